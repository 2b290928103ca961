"""What every simulated scale shared by several people has in common: its users, in turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devices.sim.health_device import SimulatedHealthDevice


class SharedScale(SimulatedHealthDevice):
    """A scale that serves ``users`` (User IDs; default two people, 1 and 2)."""

    def __init__(self, *args: Any, users: Sequence[int] = (1, 2), **kwargs: Any) -> None:
        if not users or any(not 0 <= u <= 0xFE for u in users):
            raise ValueError("users must be User IDs 0..254 (0xFF means 'unknown user')")
        self.users = tuple(users)
        self._turn = 0
        super().__init__(*args, **kwargs)

    def next_user(self) -> tuple[int, int]:
        """Random mode: whose turn it is, as (position in ``users``, User ID)."""
        position = self._turn % len(self.users)
        self._turn += 1
        return position, self.users[position]
