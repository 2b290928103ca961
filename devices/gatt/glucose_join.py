"""Joins a Glucose Measurement with the Glucose Measurement Context that follows it (pure, no I/O).

A meter sets ``context_follows`` on a measurement and then sends the context with the same sequence
number right after it (Glucose Service 1.0, section 3.2). ``attach_context`` copies the context
into ``status["context"]`` of the measurement: the context's status keys (``meal``, ``tester``,
...; not the sequence number) and its values as ``{"value": float, "unit": str}`` dicts, plus
``special_values`` when it has any. The glucose ``values`` are left as they are.
"""

from __future__ import annotations

from typing import Any

from devices.models import Measurement

CONTEXT = "context"
CONTEXT_MISSING = "context_missing"


def attach_context(measurement: Measurement, context: Measurement) -> Measurement:
    """``measurement`` with ``context`` in ``status["context"]``; ValueError on a mismatch."""
    if measurement.kind != "glucose" or context.kind != "glucose_context":
        raise ValueError(
            f"expected a glucose measurement and a glucose_context, got {measurement.kind!r} "
            f"and {context.kind!r}"
        )
    sequence = measurement.status.get("sequence_number")
    if context.status.get("sequence_number") != sequence:
        raise ValueError(
            f"context sequence number {context.status.get('sequence_number')} does not match "
            f"measurement sequence number {sequence}"
        )
    details: dict[str, Any] = {k: v for k, v in context.status.items() if k != "sequence_number"}
    for name, quantity in context.values.items():
        details[name] = {"value": quantity.value, "unit": quantity.unit}
    status = {**measurement.status, CONTEXT: details}
    return measurement.model_copy(update={"status": status})


class GlucoseContextJoiner:
    """Feeds decoded 0x2A18 and 0x2A34 Measurements in arrival order; returns finished ones.

    A measurement without ``context_follows`` comes straight out. One with it waits for its
    context; if the next glucose measurement arrives first, the waiting one comes out with
    ``status["context_missing"] = True``. A context whose measurement is not waiting comes out on
    its own (kind ``glucose_context``) so nothing is dropped. ``flush`` (at disconnect) releases a
    waiting measurement the same way.
    """

    def __init__(self) -> None:
        self._waiting: Measurement | None = None

    def feed(self, measurement: Measurement) -> list[Measurement]:
        if measurement.kind == "glucose_context":
            waiting = self._waiting
            sequence = measurement.status.get("sequence_number")
            if waiting is not None and waiting.status.get("sequence_number") == sequence:
                self._waiting = None
                return [attach_context(waiting, measurement)]
            return [measurement]
        if measurement.kind != "glucose":
            raise ValueError(f"expected glucose or glucose_context, got {measurement.kind!r}")
        out = self.flush()
        if measurement.status.get("context_follows"):
            self._waiting = measurement
        else:
            out.append(measurement)
        return out

    def flush(self) -> list[Measurement]:
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return []
        status = {**waiting.status, CONTEXT_MISSING: True}
        return [waiting.model_copy(update={"status": status})]
