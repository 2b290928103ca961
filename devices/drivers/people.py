"""Whose weighing is it: a shared scale's reading without user index, matched by weight.

Used by every scale driver: broadcast scales never send a user index, and some connected scales
send none either. The rule is the target's ``people`` (``devices.users``); the most recent
weight per person (``nearest_weight``) is kept in the device memory across restarts. A weighing
that fits nobody or several people is held: it keeps no user index and is handed over marked
``Received.held`` (the gateway keeps it until an operator says whose it is), counted in
``DeviceStatus.held_ambiguous`` (with ``held_at``), logged without the weight, never guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from devices.drivers.link import now_utc
from devices.models import Measurement
from devices.users import PeopleByWeight, weight_in_kg

if TYPE_CHECKING:
    from devices.drivers.base import DeviceRecord

log = structlog.get_logger(__name__)

_RECENT = "recent_weight_kg"  # user index -> most recent weight, for nearest_weight
_SCALE_KINDS = frozenset({"weight", "body_composition"})


class PersonFinder:
    """Matches one scale's weighings to its people; see the module doc."""

    def __init__(self, device: DeviceRecord, people: PeopleByWeight) -> None:
        self.people = people
        self._device = device
        self._memory = device.memory
        self._ref = device.target.ref

    @staticmethod
    def applies_to(measurement: Measurement) -> bool:
        """Whether this reading needs a person found: a weighing with no user index."""
        return (
            measurement.kind in _SCALE_KINDS
            and measurement.user_index is None
            and "body_weight" in measurement.values
        )

    @staticmethod
    def is_held(measurement: Measurement) -> bool:
        """Whether ``assign`` left this weighing without a person (it fits nobody or several)."""
        return PersonFinder.applies_to(measurement)

    def assign(self, measurement: Measurement) -> Measurement:
        """The reading with its person's user index; unchanged (no user index) when it is held."""
        weight = measurement.values["body_weight"]
        kg = weight_in_kg(weight.value, weight.unit)
        recent = self._recent()
        index = None if kg is None else self.people.match(kg, recent)
        if index is None:
            self._device.held_ambiguous += 1
            self._device.held_at = now_utc()
            log.warning(
                "ble.weighing_held",
                device=self._ref,
                reason="fits nobody or more than one person of this scale",
                action="assign or discard it (health-gateway held); adjust the weight ranges"
                " or usual weights in [devices.users]",
            )
            return measurement
        if self.people.learns and kg is not None:
            updated = {str(k): v for k, v in recent.items()} | {str(index): kg}
            self._memory.set(_RECENT, updated)
        return measurement.model_copy(update={"user_index": index})

    def _recent(self) -> dict[int, float]:
        value = self._memory.get(_RECENT)
        if not isinstance(value, dict):
            return {}
        return {
            int(k): float(v)
            for k, v in value.items()
            if k.isdigit() and isinstance(v, int | float) and not isinstance(v, bool)
        }
