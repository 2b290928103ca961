"""What each profile module registers: one characteristic, its kind and both directions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices.gatt._fields import Reader, Writer
from devices.models import Measurement


@dataclass(frozen=True, slots=True)
class Codec:
    """Decoder and encoder of one GATT characteristic that carries a Measurement."""

    uuid16: int
    name: str
    kind: str
    decode: Callable[[Reader], Measurement]
    encode: Callable[[Writer, Measurement], None]

    @property
    def label(self) -> str:
        return f"{self.name} (0x{self.uuid16:04X})"
