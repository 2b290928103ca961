"""``health-gateway audit verify``: check the audit chain of a gateway's data directory."""

from __future__ import annotations

import orjson

from gateway.privacy import audit
from gateway.settings import ConfigError, Settings
from gateway.storage.database import open_read_only


def verify_audit(settings: Settings, *, as_json: bool) -> int:
    path = settings.gateway.data_dir / "gateway.db"
    if not path.exists():
        raise ConfigError(f"gateway.data_dir: no database at {path}; has the gateway run yet?")
    connection = open_read_only(path)
    try:
        result = audit.verify(connection)
    finally:
        connection.close()
    if as_json:
        print(
            orjson.dumps(
                {"ok": result.ok, "entries": result.entries, "problem": result.problem}
            ).decode()
        )
    elif result.ok:
        print(f"audit log OK: {result.entries} entries, chain intact")
    else:
        print(f"audit log BROKEN after {result.entries} good entries: {result.problem}")
    return 0 if result.ok else 1
