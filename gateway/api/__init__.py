"""The local HTTP API, the probes and the person's page, served by the gateway (DESIGN.md 2.5)."""

from gateway.api.server import ROUTES, ApiServer, build_app

__all__ = ["ROUTES", "ApiServer", "build_app"]
