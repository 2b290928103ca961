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
from collections.abc import Iterable
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


def pseudonymise(keys: KeyRing, fields: Iterable[str]) -> Filter:
    """Replace each listed identifier field of the payload by its keyed pseudonym."""
    targets = tuple(fields)

    def step(item: Item, ctx: ChainContext) -> Item | None:
        for field in targets:
            value = item.payload.get(field)
            if value is not None:
                item.payload[field] = keys.pseudonym(ctx.destination, field, str(value))
        return item

    return step
