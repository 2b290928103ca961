"""Restriction of processing (GDPR art. 18): who restricted it, as the hot path asks it."""

from __future__ import annotations

import sqlite3

from gateway.storage import consents


class Restrictions:
    """Subjects who restricted processing: their readings are stored, never disclosed."""

    def __init__(self) -> None:
        self._restricted: set[str] = set()

    def load(self, connection: sqlite3.Connection) -> None:
        self._restricted = consents.restricted(connection)

    def is_restricted(self, subject_ref: str) -> bool:
        return subject_ref in self._restricted

    def apply(self, subject_ref: str, restricted: bool) -> None:
        if restricted:
            self._restricted.add(subject_ref)
        else:
            self._restricted.discard(subject_ref)
