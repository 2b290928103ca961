"""Keyed pseudonyms: identifiers replaced by HMAC-SHA-256 under a per-destination secret key.

A plain hash of a personal number can be reversed by hashing every possible number; a keyed
hash cannot without the key. Each destination has its own key, and the destination's name and
the field are also in the MAC input, so two destinations never share a pseudonym for a person
even if they were given the same key by mistake. The key id travels with the pseudonym
(``k1.<22 base64url chars>``, 128 bits) so keys can be rotated.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from filters.chain import ChainContext, Filter, Item

PSEUDONYM_BYTES = 16


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The active key (used for new pseudonyms) and its id."""

    active_id: str
    active_key: bytes

    def pseudonym(self, destination: str, field: str, identifier: str) -> str:
        message = f"{destination}\x1f{field}\x1f{identifier}".encode()
        digest = hmac.digest(self.active_key, message, "sha256")[:PSEUDONYM_BYTES]
        return f"{self.active_id}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


class PseudonymCache:
    """A person's pseudonyms, made once under the active key instead of once per reading.

    The identifiers pseudonymised per reading (a person's id, their employer's) are the same
    few values every time, and each is an HMAC. Entries are dropped when the key changes
    (``rotate``) and when a person's data is erased (``forget``); the cache is bounded, so a
    stream of distinct values never grows it past ``MAX_ENTRIES``.
    """

    MAX_ENTRIES = 4096

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._known: dict[tuple[str, str, str], str] = {}

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def pseudonym(self, destination: str, field: str, identifier: str) -> str:
        entry = (destination, field, identifier)
        found = self._known.get(entry)
        if found is None:
            if len(self._known) >= self.MAX_ENTRIES:
                self._known.clear()
            found = self._known[entry] = self._keys.pseudonym(destination, field, identifier)
        return found

    def rotate(self, keys: KeyRing) -> None:
        """A new active key: every pseudonym made from now on uses it."""
        self._keys = keys
        self._known.clear()

    def forget(self, identifiers: Collection[str]) -> None:
        """Drop what was kept about these identifiers (a person's erasure)."""
        for entry in [e for e in self._known if e[2] in identifiers]:
            del self._known[entry]

    def __len__(self) -> int:
        return len(self._known)


def pseudonymise(keys: KeyRing | PseudonymCache, fields: Iterable[str]) -> Filter:
    """Replace each listed identifier field of the payload by its keyed pseudonym."""
    targets = tuple(fields)

    def step(item: Item, ctx: ChainContext) -> Item | None:
        for field in targets:
            value = item.payload.get(field)
            if value is not None:
                item.payload[field] = keys.pseudonym(ctx.destination, field, str(value))
        return item

    return step
