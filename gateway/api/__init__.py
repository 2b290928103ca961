"""The local HTTP API, the probes and the person's page, served by the gateway (DESIGN.md 2.5).

Importing this package loads nothing: the server is ``gateway.api.server``, so a CLI command
that only needs the operator client never pulls in the aiohttp server, metrics or prometheus.
"""
