""" "Stored" acknowledgements: a reading is confirmed to its source only once it is on disk.

A glucose meter's records are asked for by sequence number, and the source remembers the
last one handed over, so the next download starts after it; real cuffs and meters delete a
record once it counts as delivered. If that mark moved when a reading was merely queued in
memory, a ``kill -9`` (or a full disk) before the commit would lose it for good. So
``Pipeline.submit`` returns a future per reading that is set once the reading is committed
(or needs no storing: a duplicate, a value that is not a reading), and the source moves its
mark only then.

Futures are set in the order readings were submitted, never out of it: alerts are stored
ahead of a backlog, and a later record confirmed before an earlier one is stored would move
the mark past a reading that is not on disk yet.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class Acknowledgements:
    def __init__(self) -> None:
        self._waiting: OrderedDict[int, asyncio.Future[bool]] = OrderedDict()
        self._stored: set[int] = set()

    def expect(self, reading: object) -> asyncio.Future[bool]:
        """A future for a reading just submitted (set True once it, and every reading
        submitted before it, is stored)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[id(reading)] = future
        return future

    def stored(self, readings: list[object]) -> None:
        """These readings are on disk (or need not be): confirm all that may be now."""
        for reading in readings:
            if id(reading) in self._waiting:
                self._stored.add(id(reading))
        while self._waiting:
            first = next(iter(self._waiting))
            if first not in self._stored:
                return
            self._stored.discard(first)
            future = self._waiting.pop(first)
            if not future.done():
                future.set_result(True)

    def refuse(self, reading: object) -> None:
        """This reading will not be stored (held memory is full): never confirmed, so the
        device keeps it and sends it again."""
        future = self._waiting.pop(id(reading), None)
        self._stored.discard(id(reading))
        if future is not None and not future.done():
            future.set_result(False)
        self.stored([])

    def abandon(self) -> None:
        """At shutdown: what is not stored by now is not confirmed."""
        for future in self._waiting.values():
            if not future.done():
                future.set_result(False)
        self._waiting.clear()
        self._stored.clear()
