"""Anonymous aggregates: counts and summary statistics per group, small cells suppressed.

A cell (one combination of the group-by values) is reported only if at least ``k`` distinct
people contributed to it. Reports carry no identifier, no pseudonym and no single reading: only
counts, means and standard deviations (no minimum or maximum, which would be one reading).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = "none"


@dataclass(slots=True)
class _Cell:
    people: set[str] = field(default_factory=set)
    readings: int = 0
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def group_value(event: Mapping[str, Any], group: str, company_labels: Mapping[str, str]) -> str:
    if group == "company":
        company = event.get("company")
        # Companies are reported only under the label the config gives them, never by id.
        return NO_VALUE if company is None else company_labels.get(str(company), "other")
    value = event.get(group)
    return NO_VALUE if value is None else str(value)


def aggregate(
    events: Iterable[tuple[str, Mapping[str, Any]]],
    group_by: Sequence[str],
    k: int,
    company_labels: Mapping[str, str],
) -> dict[str, Any]:
    """``events`` are (person reference, reading event) pairs; returns cells and suppressions."""
    cells: dict[tuple[str, ...], _Cell] = {}
    for person, event in events:
        key = tuple(group_value(event, group, company_labels) for group in group_by)
        cell = cells.setdefault(key, _Cell())
        cell.people.add(person)
        cell.readings += 1
        for name, quantity in (event.get("values") or {}).items():
            cell.values.setdefault((name, quantity["unit"]), []).append(float(quantity["value"]))
    reported = []
    suppressed = 0
    for key in sorted(cells):
        cell = cells[key]
        if len(cell.people) < k:
            suppressed += 1
            continue
        reported.append(
            {
                "group": dict(zip(group_by, key, strict=True)),
                "people": len(cell.people),
                "readings": cell.readings,
                "values": {
                    name: {
                        "unit": unit,
                        "count": len(numbers),
                        "mean": round(statistics.fmean(numbers), 2),
                        "sd": round(statistics.pstdev(numbers), 2),
                    }
                    for (name, unit), numbers in sorted(cell.values.items())
                },
            }
        )
    return {"k": k, "group_by": list(group_by), "cells": reported, "suppressed_cells": suppressed}
