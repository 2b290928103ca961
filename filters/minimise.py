"""Minimisation: a destination receives only the fields on its allow-list."""

from __future__ import annotations

from collections.abc import Iterable

from filters.chain import ChainContext, Filter, Item


class FieldLeak(Exception):
    """A payload held a field outside its destination's allow-list at the last step."""


def allow_fields(fields: Iterable[str]) -> Filter:
    """Keep only the allow-listed top-level fields of the payload and record which were kept."""
    allowed = frozenset(fields)

    def minimise(item: Item, ctx: ChainContext) -> Item | None:
        item.payload = {k: v for k, v in item.payload.items() if k in allowed}
        item.fields = tuple(sorted(item.payload))
        return item

    return minimise


def enforce_allow_list(fields: Iterable[str], allowed: frozenset[str]) -> None:
    """The last check before the outbox: raise if anything outside the list slipped in."""
    leaked = set(fields) - allowed
    if leaked:
        raise FieldLeak(f"fields {sorted(leaked)} are not on the allow-list")
