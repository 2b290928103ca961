"""The audit log cannot be cut short or rewritten with the database alone (issue 14: 8).

A real gateway delivers readings and then records a consent withdrawal; `health-gateway audit
verify` is run as an operator runs it. Then the database is tampered with as an attacker who
holds it would: the last entries (the withdrawal) deleted, an entry edited with every hash
after it recomputed, and, with the audit key stolen too, an entry rewritten and the chain
re-MACed. Each is found, and the entry is named.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import sqlite3
import stat
from pathlib import Path

import aiohttp

from tests.configs import ADULT, write_config
from tests.hub_harness import cuff, hub_config, running_hub
from tests.test_cli_ops import cli
from tests.test_damaged_storage import STORED


def rechain(database: Path, key: bytes | None, from_seq: int, data: bytes) -> None:
    """Replace entry ``from_seq``'s data and recompute every hash from there on."""
    connection = sqlite3.connect(database)
    try:
        with connection:
            connection.execute("UPDATE audit SET data = ? WHERE seq = ?", (data, from_seq))
            rows = connection.execute(
                "SELECT seq, at, event, subject_ref, data, prev_hash FROM audit"
                " WHERE seq >= ? ORDER BY seq",
                (from_seq,),
            ).fetchall()
            prev = rows[0][5]
            for seq, at, event, ref, body, _ in rows:
                head = f"{prev}\x1f{seq}\x1f{at}\x1f{event}\x1f{ref or ''}\x1f".encode()
                digest = (
                    hmac.digest(key, head + body, "sha256").hex()
                    if key
                    else hashlib.sha256(head + body).hexdigest()
                )
                connection.execute(
                    "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq)
                )
                prev = digest
    finally:
        connection.close()


async def test_truncation_and_rewriting_are_found_and_named(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(STORED)]) as hub:
        await hub.waiter.until_items("delivered", 5, destination="care-platform")
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.put(
                f"{hub.url}/api/subjects/{ADULT}/consent", json={"analytics": False}
            ) as response:
                assert response.status == 200, await response.text()
    data = tmp_path / "data"
    anchor = data / "audit.anchor"
    key_file = data / "keys" / "audit.key"
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes() != (data / "keys" / "storage.key").read_bytes()
    config = str(
        write_config(
            tmp_path / "verify.toml",
            hub_config(tmp_path, "http://127.0.0.1:9/f", "http://127.0.0.1:9/h"),
        )
    )
    database = data / "gateway.db"
    connection = sqlite3.connect(database)
    last, withdrawal = connection.execute(
        "SELECT MAX(seq), MAX(CASE WHEN event = 'consent.changed' THEN seq END) FROM audit"
    ).fetchone()
    connection.close()
    assert withdrawal == last - 1  # the withdrawal and its purge are the newest, anchored

    intact = await cli("audit", "verify", "--config", config)
    assert intact.code == 0, intact.out + intact.err
    assert f"anchored up to entry {last}" in intact.out
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(database, pristine)

    connection = sqlite3.connect(database)
    with connection:  # cut the withdrawal off: the rest is still a perfect chain
        connection.execute("DELETE FROM audit WHERE seq >= ?", (withdrawal,))
        connection.execute("DELETE FROM audit_subjects WHERE seq >= ?", (withdrawal,))
    connection.close()
    cut = await cli("audit", "verify", "--config", config)
    assert cut.code == 1
    assert f"it ends at entry {withdrawal - 1}, but entry {last} was anchored" in cut.out

    shutil.copyfile(pristine, database)
    rechain(database, None, 2, b'{"forged":true}')
    edited = await cli("audit", "verify", "--config", config)
    assert edited.code == 1 and "entry 2 was altered" in edited.out

    shutil.copyfile(pristine, database)
    rechain(database, key_file.read_bytes(), 2, b'{"forged":true}')
    remade = await cli("audit", "verify", "--config", config, "--json")
    assert remade.code == 1
    assert f"entry {last} was rewritten" in remade.out
