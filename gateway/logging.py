"""structlog set-up: JSON lines in service mode, readable lines in a terminal, always redacted.

Standard-library loggers (bleak, aiohttp, asyncio) are routed through the same processors, so a
library's message cannot carry an identifier past the redactor either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

import orjson
import structlog

from filters.redact import Redactor

if TYPE_CHECKING:
    from gateway.settings import Settings


def personal_strings(settings: Settings) -> list[str]:
    """Everything the log redactor must mask: identifiers, birth dates, device addresses."""
    strings: list[str] = []
    for subject in settings.subjects:
        strings += [subject.id, subject.birth_date.isoformat()]
        if subject.company_id:
            strings.append(subject.company_id)
    strings += [device.address for device in settings.devices]
    return strings


def _orjson_text(event: object, **_: object) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(
    *,
    format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    secrets: Iterable[str] = (),
) -> None:
    use_console = format == "console" or (format == "auto" and sys.stderr.isatty())
    redactor = Redactor(secrets)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if use_console
        else structlog.processors.JSONRenderer(serializer=_orjson_text)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # At debug level these libraries print raw characteristic values (health data) that no
    # redactor can recognise as such, so they never log below info.
    for noisy in ("bleak", "dbus_fast"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
