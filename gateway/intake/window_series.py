"""A person's samples of one value, kept in measured order so that a window costs a bisect.

The window rules judge a reading against the samples measured shortly before it. Scanning those
samples per reading in Python cost most of the rules' time; here the series keeps, beside its
samples, plain lists of their instants and values, so that finding a window is a bisect and its
lowest value, highest value or exact sum is one call over a list slice (``min``, ``max``,
``math.fsum``: C loops). The samples a rule looks at only in part (those taken at given times
of day, those beyond a count's limit) are kept as a ``Subset`` of the series, updated as samples
are inserted (late ones in their place) and trimmed, so a count is the distance between two
bisects.

Order: by measured instant, then reading id; a sample equal to one already held goes after it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple


class Sample(NamedTuple):
    t: float  # measured instant (epoch seconds, device clock corrected by its offset)
    value: float  # in the series' unit
    reading_id: str
    day_s: int  # seconds since local midnight at measurement (for times-of-day filters)


def order(sample: Sample) -> tuple[float, str]:
    return (sample.t, sample.reading_id)


class _Ordered:
    """Samples with their order keys, instants and values in parallel lists."""

    __slots__ = ("keys", "samples", "times", "values")

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples: list[Sample] = list(samples)  # already in order
        self.keys = [(s.t, s.reading_id) for s in self.samples]
        self.times = [s.t for s in self.samples]
        self.values = [s.value for s in self.samples]

    def _place(self, sample: Sample, key: tuple[float, str]) -> int:
        keys = self.keys
        if not keys or key >= keys[-1]:  # the usual case: the newest reading
            keys.append(key)
            self.samples.append(sample)
            self.times.append(sample.t)
            self.values.append(sample.value)
            return len(keys) - 1
        index = bisect.bisect_right(keys, key)
        keys.insert(index, key)
        self.samples.insert(index, sample)
        self.times.insert(index, sample.t)
        self.values.insert(index, sample.value)
        return index

    def _cut(self, before: float) -> None:
        cut = bisect.bisect_left(self.times, before)
        if cut:
            del self.keys[:cut], self.samples[:cut], self.times[:cut], self.values[:cut]


class Subset(_Ordered):
    """The samples of a series that pass a test, in the series' order, kept as it changes."""

    __slots__ = ("accepts",)

    def __init__(self, accepts: Callable[[Sample], bool], samples: Sequence[Sample]) -> None:
        super().__init__([s for s in samples if accepts(s)])
        self.accepts = accepts

    def window(self, start: float, end: tuple[float, str]) -> tuple[int, int]:
        """Positions of the samples measured from ``start`` up to the sample ordered at ``end``
        (included)."""
        first = bisect.bisect_left(self.times, start)
        return first, bisect.bisect_right(self.keys, end, first)


class Series(_Ordered):
    """One person's samples of one value, sorted, with the subsets its rules look at."""

    __slots__ = ("_subsets", "unit")

    def __init__(self, unit: str, samples: Sequence[Sample] = ()) -> None:
        super().__init__(sorted(samples, key=order))
        self.unit = unit
        self._subsets: dict[Hashable, Subset] = {}

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def latest(self) -> float:
        return self.times[-1] if self.times else -math.inf

    def insert(self, sample: Sample) -> int:
        """Adds a sample in order (and to every subset it passes); returns its index."""
        key = (sample.t, sample.reading_id)
        for subset in self._subsets.values():
            if subset.accepts(sample):
                subset._place(sample, key)
        keys = self.keys
        if keys and key < keys[-1]:
            return self._place(sample, key)  # a late sample
        keys.append(key)  # the usual case, written out: it is most of the series' work
        self.samples.append(sample)
        self.times.append(sample.t)
        self.values.append(sample.value)
        return len(keys) - 1

    def trim(self, before: float) -> None:
        """Forgets samples measured before ``before``."""
        self._cut(before)
        for subset in self._subsets.values():
            subset._cut(before)

    def between(self, start: float, end: float) -> list[Sample]:
        """The samples measured from ``start`` up to (not including) ``end``."""
        first = bisect.bisect_left(self.times, start)
        return self.samples[first : bisect.bisect_left(self.times, end, first)]

    def window_start(self, index: int, span: float) -> int:
        return bisect.bisect_left(self.times, self.times[index] - span, 0, index + 1)

    def subset(self, name: Hashable, accepts: Callable[[Sample], bool]) -> Subset:
        """The subset called ``name`` (made from the samples held, the first time it is asked
        for); the same name must always come with the same test."""
        subset = self._subsets.get(name)
        if subset is None:
            subset = self._subsets[name] = Subset(accepts, self.samples)
        return subset
