"""Filter chains: callables ``(item, ctx) -> item | None``, composed like structlog processors.

A chain belongs to one destination. Each step may change the item or drop it (return None);
the first None ends the chain. Steps are pure: no I/O, no clocks, nothing but ``item`` and
``ctx``, so a chain's behaviour is a function of its inputs and can be property-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Item:
    """One candidate disclosure of a reading or an alert to one destination."""

    reading_id: str
    subject_ref: str
    category: str  # "reading" or "alert"
    payload: dict[str, Any]
    legal_basis: str | None = None
    vital_interest: bool = False  # a critical alert whose rule allows vital interest
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainContext:
    """What a chain may consult: the destination, and the subject's current choices."""

    destination: str
    purpose: str
    is_granted: Callable[[str, str], bool]  # (subject_ref, purpose) -> granted now
    is_restricted: Callable[[str], bool] = field(default=lambda _ref: False)


Filter = Callable[[Item, ChainContext], Item | None]


def run_chain(steps: Sequence[Filter], item: Item, ctx: ChainContext) -> Item | None:
    for step in steps:
        result = step(item, ctx)
        if result is None:
            return None
        item = result
    return item
