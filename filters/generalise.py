"""Generalisation: less precise values, so a recipient learns what it needs and no more."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from filters.chain import ChainContext, Filter, Item


def round_to_step(value: float, step: float) -> float:
    rounded = round(value / step) * step
    # Keep the step's own precision (5 -> 120, 0.25 -> 72.75), not float noise like 72.7500001.
    exponent = Decimal(str(step)).normalize().as_tuple().exponent
    return round(rounded, max(0, -exponent) if isinstance(exponent, int) else 6)


def round_values(steps: Mapping[str, float]) -> Filter:
    """Round each named reading value to a multiple of its step (e.g. systolic to 5 mmHg)."""
    table = dict(steps)

    def step(item: Item, ctx: ChainContext) -> Item | None:
        values = item.payload.get("values")
        if values and table:
            item.payload["values"] = {
                name: (
                    {**quantity, "value": round_to_step(quantity["value"], table[name])}
                    if name in table
                    else quantity
                )
                for name, quantity in values.items()
            }
        return item

    return step
