"""One HTTP POST and its classification into an ``Outcome`` for the items it carried."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.exporters.base import (
    CREDENTIALS_REFUSED_STATUS,
    Outcome,
    excerpt,
    is_retryable,
    parse_retry_after,
)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    ids: list[int],
) -> tuple[Outcome, int | None, str]:
    """POST ``body``; returns the outcome for ``ids`` plus the status and response text."""
    try:
        # Redirects are never followed: a 307/308 would re-send the body (a person's identifier
        # and values) to an address that never passed the https, loopback and EEA checks.
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            text = await response.text(errors="replace")
            status = response.status
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except TimeoutError:
        return Outcome(retry=list(ids), reason=f"timed out after {timeout_s:g} s"), None, ""
    except aiohttp.ClientError as exc:
        return Outcome(retry=list(ids), reason=f"{type(exc).__name__}: {exc}"), None, ""
    except asyncio.CancelledError:
        raise
    if 200 <= status < 300:
        return Outcome(delivered=list(ids)), status, text
    if 300 <= status < 400:
        # Neither the answer's text nor its Location is kept: only what the operator must do.
        reason = (
            f"HTTP {status} redirect not followed; set the destination's url to its final address"
        )
        return Outcome(failed=[(i, status, reason) for i in ids], reason=reason), status, ""
    if status in CREDENTIALS_REFUSED_STATUS:
        reason = f"HTTP {status}: credentials refused; replace the token and restart"
        outcome = Outcome(retry=list(ids), retry_after_s=retry_after, reason=reason, paused=True)
        return outcome, status, text
    if is_retryable(status):
        outcome = Outcome(retry=list(ids), retry_after_s=retry_after, reason=f"HTTP {status}")
        return outcome, status, text
    failed = [(i, status, excerpt(text)) for i in ids]
    return Outcome(failed=failed, reason=f"HTTP {status}"), status, text
