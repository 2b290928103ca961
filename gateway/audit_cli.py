"""``health-gateway audit verify``: check the audit chain of a gateway's data directory."""

from __future__ import annotations

import sqlite3

import orjson

from gateway.privacy import audit
from gateway.privacy.audit_anchor import keyed_from, last_anchor
from gateway.privacy.keys import read_key
from gateway.settings import ConfigError, Settings
from gateway.storage.database import StoreError, open_read_only


def verify_audit(settings: Settings, *, as_json: bool) -> int:
    path = settings.gateway.data_dir / "gateway.db"
    if not path.exists():
        raise ConfigError(f"gateway.data_dir: no database at {path}; has the gateway run yet?")
    key_path = settings.gateway.data_dir / "keys" / "audit.key"
    key = read_key(key_path) if key_path.exists() else None
    anchor = last_anchor(settings.gateway.data_dir / "audit.anchor")
    try:
        connection = open_read_only(path)
        try:
            if key is None and keyed_from(connection) is not None:
                raise ConfigError(
                    f"{key_path}: the audit key is missing; restore it from a backup to verify"
                )
            result = audit.verify(connection, key=key, anchor=anchor)
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise StoreError(f"{path}: cannot read the audit log ({exc})") from None
        raise StoreError(
            f"{path}: holds no audit log; is gateway.data_dir the gateway's data directory?"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path}: the database is damaged ({exc}); the audit log cannot be verified."
            " Keep a copy of the file and restore it from a backup"
        ) from None
    if as_json:
        print(
            orjson.dumps(
                {"ok": result.ok, "entries": result.entries, "problem": result.problem}
            ).decode()
        )
    elif result.ok:
        anchored = "" if anchor is None else f", anchored up to entry {anchor.seq}"
        print(f"audit log OK: {result.entries} entries, chain intact{anchored}")
    else:
        print(f"audit log BROKEN after {result.entries} good entries: {result.problem}")
    return 0 if result.ok else 1
