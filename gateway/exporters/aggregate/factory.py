"""Builds an ``aggregate`` destination: its report sender; its windows are made by the hub."""

from __future__ import annotations

import aiohttp

from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.analytics.sender import JsonBatchSink
from gateway.secrets import read_secret


def build_sink(destination: AggregateDestination, session: aiohttp.ClientSession) -> JsonBatchSink:
    """One report per request: a report is already the aggregate of a whole window."""
    token = read_secret(
        f"destinations.{destination.name}.token",
        destination.token_file,
        destination.token_env,
        required=False,
    )
    return JsonBatchSink(
        destination, session, token, key="reports", max_batch=1, max_bytes=None, linger_s=0.0
    )
