"""Telling apart the people who share a scale that does not know them (no user index).

Broadcast scales (Xiaomi Mi Scale, Mi Body Composition Scale) send a weight and nothing about
who stood on them. ``[devices.users]`` can then tell people apart by weight, in one of two ways:

* ``weight_range``: each person has a range in kg; a weighing inside exactly one range is
  theirs.
* ``nearest_weight``: each person has a usual weight to start from; a weighing belongs to the
  person whose most recent weight is nearest, and becomes that person's most recent weight.
  It must be within ``max_change_kg`` of it (nobody's weight jumps further between weighings),
  and clearly nearer to one person than to any other (``margin_kg``).

A weighing that fits nobody or more than one person is ambiguous: the source holds it back and
counts it, and never guesses; wrongly assigned health data is worse than missing data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Rule = Literal["weight_range", "nearest_weight"]
RULES: tuple[Rule, ...] = ("weight_range", "nearest_weight")

# Pounds (avoirdupois) per kilogram are defined exactly: 1 lb = 0.45359237 kg.
KG_PER_LB = 0.45359237


@dataclass(frozen=True, slots=True)
class PersonByWeight:
    """One person on a shared scale: the user index bound to them, and how to recognise them."""

    user_index: int
    weight_range_kg: tuple[float, float] | None = None
    usual_weight_kg: float | None = None


@dataclass(frozen=True, slots=True)
class PeopleByWeight:
    """The people of one shared scale and the rule that tells them apart."""

    rule: Rule
    people: tuple[PersonByWeight, ...]
    margin_kg: float = 1.0
    max_change_kg: float = 5.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; use one of {', '.join(RULES)}")
        if not self.people:
            raise ValueError("at least one person is needed")
        if self.margin_kg < 0 or self.max_change_kg <= 0:
            raise ValueError("margin_kg must not be negative and max_change_kg must be positive")
        indexes = [p.user_index for p in self.people]
        if len(set(indexes)) != len(indexes):
            raise ValueError("two people share a user index")
        for person in self.people:
            if self.rule == "weight_range":
                bounds = person.weight_range_kg
                if bounds is None or not 0 < bounds[0] < bounds[1]:
                    raise ValueError(
                        f"user {person.user_index}: weight_range needs [low, high] in kg, "
                        "low below high"
                    )
            elif person.usual_weight_kg is None or person.usual_weight_kg <= 0:
                raise ValueError(
                    f"user {person.user_index}: nearest_weight needs a usual weight in kg to start"
                )

    def match(self, weight_kg: float, recent_kg: Mapping[int, float]) -> int | None:
        """The user index this weighing belongs to, or None when it is ambiguous."""
        if self.rule == "weight_range":
            inside = [
                p.user_index
                for p in self.people
                if p.weight_range_kg is not None
                and p.weight_range_kg[0] <= weight_kg <= p.weight_range_kg[1]
            ]
            return inside[0] if len(inside) == 1 else None
        distances = sorted(
            (abs(weight_kg - recent_kg.get(p.user_index, p.usual_weight_kg or 0.0)), p.user_index)
            for p in self.people
        )
        nearest, index = distances[0]
        if nearest > self.max_change_kg:
            return None
        if len(distances) > 1 and distances[1][0] - nearest < self.margin_kg:
            return None
        return index

    @property
    def learns(self) -> bool:
        """Whether a matched weighing updates the person's recent weight."""
        return self.rule == "nearest_weight"


def weight_in_kg(value: float, unit: str) -> float | None:
    """A body weight in kg from the units scales report (kg, [lb_av]); None for others."""
    if unit == "kg":
        return value
    if unit == "[lb_av]":
        return value * KG_PER_LB
    return None
