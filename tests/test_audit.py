"""The audit chain detects edited, removed and reordered entries, and says where."""

import sqlite3

import pytest

from gateway.privacy import audit
from gateway.storage.database import SCHEMA


@pytest.fixture
def connection(tmp_path):
    connection = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    connection.executescript(SCHEMA)
    for i in range(5):
        audit.append(
            connection,
            "disclosure",
            {"reading_id": f"r-{i}", "destination": "care"},
            subject_ref="s-1",
        )
    yield connection
    connection.close()


def test_intact_chain_verifies(connection):
    result = audit.verify(connection)
    assert result.ok and result.entries == 5 and result.problem is None
    assert [e.data["reading_id"] for e in audit.entries(connection, subject_ref="s-1")] == [
        "r-4",
        "r-3",
        "r-2",
        "r-1",
        "r-0",
    ]


def test_edited_entry_is_found(connection):
    connection.execute(
        "UPDATE audit SET data = ? WHERE seq = 3", (b'{"destination":"care","reading_id":"r-x"}',)
    )
    result = audit.verify(connection)
    assert not result.ok and result.problem == "entry 3 was altered" and result.entries == 2


def test_removed_entry_is_found(connection):
    connection.execute("DELETE FROM audit WHERE seq = 2")
    result = audit.verify(connection)
    assert not result.ok and result.problem == "entry 2 is missing (next is 3)"


def test_removed_last_entries_with_rewritten_tail_is_found(connection):
    # Swapping two entries' content (a reordering) breaks the links at the first swapped one.
    rows = connection.execute(
        "SELECT seq, at, event, subject_ref, data FROM audit WHERE seq IN (2, 3) ORDER BY seq"
    ).fetchall()
    (s2, at2, ev2, ref2, d2), (s3, at3, ev3, ref3, d3) = rows
    connection.execute("UPDATE audit SET at=?, event=?, data=? WHERE seq=2", (at3, ev3, d3))
    connection.execute("UPDATE audit SET at=?, event=?, data=? WHERE seq=3", (at2, ev2, d2))
    result = audit.verify(connection)
    assert not result.ok and result.problem == "entry 2 was altered"


def test_recomputed_hash_still_breaks_the_next_link(connection):
    # A forger who rewrites entry 3 and recomputes its own hash still breaks entry 4's link.
    row = connection.execute(
        "SELECT prev_hash, at, event, subject_ref FROM audit WHERE seq=3"
    ).fetchone()
    forged = b'{"destination":"elsewhere","reading_id":"r-2"}'
    new_hash = audit._entry_hash(row[0], 3, row[1], row[2], row[3], forged)
    connection.execute("UPDATE audit SET data=?, hash=? WHERE seq=3", (forged, new_hash))
    result = audit.verify(connection)
    assert not result.ok and result.problem == "entry 4 does not follow entry 3"


def test_batched_appends_extend_the_same_chain(connection):
    last = audit.append_many(
        connection, [("disclosure", {"reading_id": f"b-{i}"}, "s-2") for i in range(3)]
    )
    assert last == 8
    audit.append(connection, "consent.changed", {"purposes": {"care": False}}, subject_ref="s-2")
    result = audit.verify(connection)
    assert result.ok and result.entries == 9
    connection.execute("UPDATE audit SET data = ? WHERE seq = 7", (b'{"reading_id":"b-x"}',))
    assert audit.verify(connection).problem == "entry 7 was altered"
