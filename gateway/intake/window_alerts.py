"""Window alert rules: a change, a mean or a count over a window, and missing readings.

Every reading is placed in its person's series by its **measured** time (the device's clock,
read in the hub's time zone and corrected by the device clock's offset; the time of receipt
when the device sent none), and judged there: a cuff's stored burst or a glucose meter's
download arriving today is judged on the days it was measured, not on the day it arrived.

Rules of one kind on one value form a ladder, as limits do: the most severe rule that holds
speaks; while it holds nothing repeats within the rule's cooldown (by default one further
window) unless a more severe rule now holds; when a later judgement finds none holding,
``alert.resolved`` follows. "Later" is by measured time: a late reading judged before the
alert's own reading never resolves it. A late reading is judged at its own time (a condition
that held then is raised, and resolved at once if it no longer holds) and the newest reading is
judged again, since the late one is now in its window.

Missing readings are judged against the gateway's clock (``check_missing``): when a person
whose devices send a kind has sent none for ``missing_for`` (counted from the newest measured
reading, or from when the rule first watched them), one alert is raised for the gap; the next
reading of that kind resolves it.

The state (series, raised episodes, the newest reading per kind) changes in memory and is handed
to the pipeline by ``take_changes`` to be written with the readings in one transaction.
Series keep what the longest window needs plus ``LATE_HORIZON_S`` for late readings (from the
midnight before, so that whole days are dropped and the day kept first is never rewritten); a
reading measured before that is stored and sent as usual but not judged by window rules.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.intake.alert_windows import (
    DAY_S,
    Observation,
    Sample,
    Series,
)
from gateway.intake.events import BoundReading
from gateway.intake.window_alert_event import Judgement, WindowAlertEvent, WindowRule
from gateway.intake.window_judges import WindowJudge
from gateway.units import UnitError, convert

# How far before the newest reading a late reading may be measured and still be judged: a cuff
# keeps a week or two of readings, and a hub may be off for a while.
LATE_HORIZON_S = 14 * 86_400.0
WINDOW_TYPES = ("change", "mean", "count")


@dataclass(slots=True)
class Episode:
    """A raised window alert: the rule that spoke, and when (measured time)."""

    rule: str
    raised_at: float
    rank: int
    phrase: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "raised_at": self.raised_at,
            "rank": self.rank,
            "phrase": self.phrase,
        }


@dataclass(slots=True)
class Watch:
    """Missing readings of one kind for one person."""

    since: float  # when the rule started watching (a person who never measured)
    last_seen: float = -math.inf  # newest measured instant of a reading of this kind
    last_id: str | None = None
    active: str | None = None  # the rule that raised the current gap
    rank: int = -1
    gap_from: float | None = None
    phrase: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "last_seen": None if math.isinf(self.last_seen) else self.last_seen,
            "last_id": self.last_id,
            "active": self.active,
            "rank": self.rank,
            "gap_from": self.gap_from,
            "phrase": self.phrase if self.active else {},
        }


@dataclass(slots=True)
class _Track:
    """One person's value under window rules: its series and the rules bound to it."""

    key: tuple[str, str, str]  # (subject ref, kind, value)
    series: Series
    ladders: list[tuple[tuple[str, str, str, str], list[WindowJudge]]]  # (episode key, rules)
    dirty: set[int] | None = None  # days measured since the last ``take_changes``


_new_sample = tuple.__new__  # a Sample without the named tuple's Python-level constructor
_UNKNOWN = object()  # a value not looked at yet (``None``: no window rule judges it)


def measured_instant(reading: BoundReading) -> tuple[float, int]:
    """(epoch seconds, seconds since local midnight) of when a reading was measured.

    The device's naive timestamp is read in the hub's time zone and corrected by the device
    clock's offset (device minus gateway), as the FHIR mapper does; no timestamp: receipt.
    """
    measured = reading.measurement.measured_at
    if measured is None:
        local = reading.received_at.astimezone()
        return reading.received_at.timestamp(), _day_seconds(local)
    if reading.clock_offset_s:
        measured -= timedelta(seconds=reading.clock_offset_s)
    # A naive datetime's timestamp() reads it in the hub's local time zone.
    local = measured if measured.tzinfo is None else measured.astimezone()
    return measured.timestamp(), _day_seconds(local)


def _day_seconds(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


class WindowEngine:
    """Judges window and missing-readings rules for every person; holds their state."""

    def __init__(
        self,
        general: Sequence[WindowRule],
        personal: Mapping[str, Sequence[WindowRule]],
        subjects: Mapping[str, str],
        watched_kinds: Mapping[str, set[str]],
        *,
        history_limit_s: float | None = None,
    ) -> None:
        """``subjects``: subject ref -> id; ``watched_kinds``: ref -> kinds their devices send;
        ``history_limit_s``: the retention period, which no series outlives."""
        self._general = list(general)
        self._personal = {ref: list(rules) for ref, rules in personal.items()}
        self._subjects = dict(subjects)
        every = [*self._general, *(r for rules in self._personal.values() for r in rules)]
        longest = max((r.span for r in every if r.type in WINDOW_TYPES), default=0.0)
        self._keep_s = longest + LATE_HORIZON_S
        if history_limit_s is not None:
            self._keep_s = min(self._keep_s, history_limit_s)
        self._series_units: dict[tuple[str, str], str | None] = {}
        for rule in every:
            if rule.type in WINDOW_TYPES and rule.settings.value is not None:
                target = (rule.settings.kind, rule.settings.value)
                if self._series_units.get(target) is None:
                    self._series_units[target] = rule.settings.unit
        self.targets = frozenset(self._series_units)
        self._watch_rules: dict[tuple[str, str], list[WindowRule]] = {}
        for ref, kinds in watched_kinds.items():
            for kind in kinds:
                rules = self._select(ref, kind, None, "missing")
                if rules:
                    self._watch_rules[(ref, kind)] = rules
        self.watched_kinds = frozenset(kind for _ref, kind in self._watch_rules)
        self._rules_cache: dict[tuple[str, str, str], dict[str, list[WindowRule]]] = {}
        self._series: dict[tuple[str, str, str], Series] = {}
        # Per (person, kind, value) seen: its series with the rules bound, or None (no rules).
        self._tracks: dict[tuple[str, str, str], _Track | None] = {}
        # The days each series has on disk, oldest first.
        self._days: dict[tuple[str, str, str], list[int]] = {}
        self._dirty: list[_Track] = []  # the series with days to write (``take_changes``)
        self._episodes: dict[tuple[str, str, str, str], Episode] = {}
        self._watches: dict[tuple[str, str], Watch] = {}
        self._changed: dict[tuple[str, str], dict[str, Any] | None] = {}

    # Rules -------------------------------------------------------------------------------

    def _select(self, ref: str, kind: str, value: str | None, type_: str) -> list[WindowRule]:
        """A person's own rules of a type for a target replace the general ones of that type."""

        def fits(rule: WindowRule) -> bool:
            s = rule.settings
            return rule.type == type_ and s.kind == kind and s.value == value

        own = [r for r in self._personal.get(ref, ()) if fits(r)]
        return own or [r for r in self._general if fits(r)]

    def _ladders(self, ref: str, kind: str, value: str) -> dict[str, list[WindowRule]]:
        key = (ref, kind, value)
        ladders = self._rules_cache.get(key)
        if ladders is None:
            ladders = {}
            for type_ in WINDOW_TYPES:
                rules = self._select(ref, kind, value, type_)
                if rules:
                    ladders[type_] = rules
            self._rules_cache[key] = ladders
        return ladders

    # Readings ----------------------------------------------------------------------------

    def evaluate(self, reading: BoundReading) -> list[WindowAlertEvent]:
        measurement = reading.measurement
        ref, kind = reading.subject_ref, measurement.kind
        events: list[WindowAlertEvent] = []
        instant: tuple[float, int] | None = None
        if (ref, kind) in self._watch_rules:
            instant = measured_instant(reading)
            event = self._seen(reading, instant[0])
            if event is not None:
                events.append(event)
        tracks = self._tracks
        for name, quantity in measurement.values.items():
            key = (ref, kind, name)
            track = tracks.get(key, _UNKNOWN)
            if track is _UNKNOWN:
                track = tracks[key] = self._track(key, quantity.unit)
            if track is None:
                continue  # no window rule for this value of this person's
            instant = instant or measured_instant(reading)
            self._judge_reading(track, reading, quantity.value, quantity.unit, instant, events)
        return events

    def _track(self, key: tuple[str, str, str], raw_unit: str) -> _Track | None:
        """The person's series of a value with its rules bound to it; None without rules."""
        ref, kind, name = key
        if (kind, name) not in self.targets:
            return None
        ladders = self._ladders(ref, kind, name)
        if not ladders:
            return None
        series = self._series.get(key)
        if series is None:
            unit = self._series_units.get((kind, name)) or raw_unit
            series = self._series[key] = Series(unit)
        bound = [
            ((ref, kind, name, type_), [WindowJudge(rule, series) for rule in rules])
            for type_, rules in ladders.items()
        ]
        return _Track(key, series, bound)

    def _judge_reading(
        self,
        track: _Track,
        reading: BoundReading,
        raw: float,
        raw_unit: str,
        instant: tuple[float, int],
        events: list[WindowAlertEvent],
    ) -> None:
        """Places the reading's value in its series and judges it; adds what it raised or
        resolved to ``events``."""
        series = track.series
        try:
            value = raw if raw_unit == series.unit else convert(raw, raw_unit, series.unit)
        except UnitError:
            return  # validated at start; a device in an unexpected unit is skipped
        t, day_s = instant
        times = series.times
        cut = (times[-1] if times and times[-1] > t else t) - self._keep_s
        if t < cut:
            return  # older than the history kept: stored and sent, not judged
        # Whole days are forgotten, once a day, when the cut passes midnight: what is kept in
        # memory stays what is kept on disk without rewriting the day the cut falls in.
        first_day = cut // DAY_S * DAY_S
        if times and times[0] < first_day:
            series.trim(first_day)
            self._trimmed(track.key, first_day)
        index = series.insert(_new_sample(Sample, (t, value, reading.reading_id, day_s)))
        # Written by the day it was measured: a reading rewrites its day's few samples, never
        # the whole history (``take_changes``).
        day = int(t // DAY_S)
        if track.dirty is None:
            track.dirty = {day}
            self._dirty.append(track)
        else:
            track.dirty.add(day)
        newest = len(series) - 1
        episodes = self._episodes
        for episode_key, ladder in track.ladders:
            if index == newest and episode_key not in episodes:
                for judge in ladder:
                    if judge.holds(index):
                        break
                else:
                    continue  # the usual case: nothing holds and nothing was raised
            event = self._judge(episode_key, ladder, series, index, reading)
            if event is not None:
                events.append(event)
            if index != newest:
                # A late reading: the newest reading's window now holds it too.
                event = self._judge(episode_key, ladder, series, newest, reading)
                if event is not None:
                    events.append(event)

    def _judge(
        self,
        key: tuple[str, str, str, str],
        ladder: list[WindowJudge],
        series: Series,
        index: int,
        reading: BoundReading,
    ) -> WindowAlertEvent | None:
        episode = self._episodes.get(key)
        if episode is None:
            for judge in ladder:
                if judge.holds(index):
                    break
            else:
                return None  # the usual case: nothing holds and nothing was raised
        elif series.times[index] < episode.raised_at:
            return None  # older than the raising reading: says nothing new
        judgements = []
        held = []
        for judge in ladder:
            judgement = judge.quick(index)
            if judgement is not None:
                judgements.append(judgement)
                if judgement.held:
                    held.append(judgement)
        judged = series.samples[index]
        ref = key[0]

        def event(type_: str, quick: Judgement) -> WindowAlertEvent:
            # The same judgement again, with the readings that made it, for the alert body.
            judge = next(judge for judge in ladder if judge.rule is quick.rule)
            judgement = judge.judge(index) or quick
            return WindowAlertEvent(
                type_,
                judgement.rule,
                ref,
                self._subjects.get(ref, ""),
                judgement,
                datetime.fromtimestamp(judged.t, UTC),
                reading,
                judged.reading_id if judged.reading_id != reading.reading_id else None,
                series.unit,
            )

        if not held:
            if episode is None or judged.t < episode.raised_at:
                return None
            spoke = next((j for j in judgements if j.rule.key == episode.rule), None)
            if spoke is None:
                return None  # the raising rule cannot judge here (too few readings): no news
            del self._episodes[key]
            self._changed[(ref, _episode_slot(key))] = None
            return event("alert.resolved", spoke)
        worst = max(held, key=lambda j: (j.rule.rank, j.excess))
        if episode is not None:
            if judged.t < episode.raised_at:
                return None  # older than the raising reading: says nothing new
            current = next((j.rule for j in ladder if j.rule.key == episode.rule), worst.rule)
            within_cooldown = judged.t - episode.raised_at < current.settings.cooldown
            if within_cooldown and worst.rule.rank <= episode.rank:
                return None
        raised = event("alert.raised", worst)
        self._episodes[key] = Episode(worst.rule.key, judged.t, worst.rule.rank, raised.phrase())
        self._changed[(ref, _episode_slot(key))] = self._episodes[key].state()
        return raised

    # Missing readings --------------------------------------------------------------------

    def _seen(self, reading: BoundReading, t: float) -> WindowAlertEvent | None:
        ref, kind = reading.subject_ref, reading.measurement.kind
        watch = self._watches.get((ref, kind))
        if watch is None:
            watch = self._watches[(ref, kind)] = Watch(since=t)
        if t <= watch.last_seen:
            return None  # older than what we knew: the gap (if any) is not closed by it
        watch.last_seen, watch.last_id = t, reading.reading_id
        resolved = None
        if watch.active is not None and watch.gap_from is not None and t > watch.gap_from:
            rule = next((r for r in self._watch_rules[(ref, kind)] if r.key == watch.active), None)
            if rule is not None:
                gap = t - watch.gap_from
                judgement = Judgement(rule, False, "longer_than", gap, rule.span, None, None)
                resolved = WindowAlertEvent(
                    "alert.resolved",
                    rule,
                    ref,
                    self._subjects.get(ref, ""),
                    judgement,
                    datetime.fromtimestamp(t, UTC),
                    reading,
                )
            watch.active, watch.rank, watch.gap_from = None, -1, None
        self._changed[(ref, _watch_slot(kind))] = watch.state()
        return resolved

    def check_missing(self, now: datetime) -> list[WindowAlertEvent]:
        """Missing-readings alerts due at ``now`` (the gateway's clock; tests pass their own)."""
        moment = now.timestamp()
        events = []
        for (ref, kind), rules in self._watch_rules.items():
            watch = self._watches.get((ref, kind))
            if watch is None:
                watch = self._watches[(ref, kind)] = Watch(since=moment)
                self._changed[(ref, _watch_slot(kind))] = watch.state()
                continue
            last = max(watch.last_seen, watch.since)
            gap = moment - last
            held = [rule for rule in rules if gap >= rule.span]
            if not held:
                continue
            worst = max(held, key=lambda rule: (rule.rank, rule.span))
            if watch.active is not None and worst.rank <= watch.rank:
                continue  # once per gap, unless a more severe rule now holds
            window = Observation(gap, (), last, moment)
            judgement = Judgement(worst, True, "longer_than", gap, worst.span, None, window)
            last_reading = (watch.last_id, watch.last_seen) if watch.last_id is not None else None
            event = WindowAlertEvent(
                "alert.raised",
                worst,
                ref,
                self._subjects.get(ref, ""),
                judgement,
                datetime.fromtimestamp(last, UTC),
                issued_at=now,
                last_reading=last_reading,
            )
            watch.active, watch.rank, watch.gap_from = worst.key, worst.rank, last
            watch.phrase = event.phrase()
            self._changed[(ref, _watch_slot(kind))] = watch.state()
            events.append(event)
        return events

    # State -------------------------------------------------------------------------------

    def take_changes(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """The state changed since the last call: (subject ref, slot, state or None)."""
        for track in self._dirty:
            ref, kind, name = track.key
            series = track.series
            days = self._days.setdefault(track.key, [])
            for day in track.dirty or ():
                samples = series.between(day * DAY_S, (day + 1) * DAY_S)
                slot = _series_slot(kind, name, day)
                if samples:
                    _add_day(days, day)
                    self._changed[(ref, slot)] = {
                        "unit": series.unit,
                        "samples": list(map(list, samples)),  # [t, value, reading id, day_s]
                    }
                else:
                    _drop_day(days, day)
                    self._changed[(ref, slot)] = None
            track.dirty = None
        self._dirty.clear()
        changes = [(ref, slot, state) for (ref, slot), state in self._changed.items()]
        self._changed.clear()
        return changes

    def _trimmed(self, key: tuple[str, str, str], cut: float) -> None:
        """Deletes the days before ``cut`` (a midnight) from disk."""
        days = self._days.get(key)
        if not days:
            return
        gone = bisect.bisect_left(days, int(cut // DAY_S))
        for day in days[:gone]:
            self._changed[(key[0], _series_slot(key[1], key[2], day))] = None
        del days[:gone]

    def forget(self, subject_ref: str) -> None:
        """Drops everything held in memory about a person (after erasure)."""
        stores = (
            self._series,
            self._tracks,
            self._days,
            self._episodes,
            self._watches,
            self._changed,
        )
        for store in stores:
            for key in [key for key in store if key[0] == subject_ref]:
                del store[key]
        for track in self._dirty:
            if track.key[0] == subject_ref:
                track.dirty = None
        self._dirty = [track for track in self._dirty if track.key[0] != subject_ref]

    def restore(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Loads state written by ``take_changes`` before a restart. State for a rule that is no
        longer configured (or is now a different kind of rule) is dropped."""
        series: dict[tuple[str, str, str], list[Sample]] = {}
        units: dict[tuple[str, str, str], str] = {}
        for ref, slot, state in rows:
            parts = slot.split("/")
            if parts[0] == "series" and len(parts) == 4 and parts[3].isdigit():
                _, kind, name, day = parts
                unit = self._series_units.get((kind, name)) or state["unit"]
                samples = [
                    Sample(t, _convert_or_nan(v, state["unit"], unit), rid, day_s)
                    for t, v, rid, day_s in state["samples"]
                ]
                units[(ref, kind, name)] = unit
                series.setdefault((ref, kind, name), []).extend(
                    s for s in samples if not math.isnan(s.value)
                )
                _add_day(self._days.setdefault((ref, kind, name), []), int(day))
            elif parts[0] == "episode" and len(parts) == 4:
                _, kind, name, type_ = parts
                rules = self._ladders(ref, kind, name).get(type_, [])
                if any(rule.key == state["rule"] for rule in rules):
                    self._episodes[(ref, kind, name, type_)] = Episode(
                        state["rule"], state["raised_at"], state["rank"], state.get("phrase", {})
                    )
                else:
                    self._changed[(ref, slot)] = None
            elif parts[0] == "missing" and len(parts) == 2:
                kind = parts[1]
                watch = Watch(
                    since=state["since"],
                    last_seen=-math.inf if state["last_seen"] is None else state["last_seen"],
                    last_id=state.get("last_id"),
                    active=state["active"],
                    rank=state["rank"],
                    gap_from=state["gap_from"],
                    phrase=state.get("phrase") or {},
                )
                rules = self._watch_rules.get((ref, kind), [])
                if watch.active is not None and not any(r.key == watch.active for r in rules):
                    watch.active, watch.rank, watch.gap_from = None, -1, None
                self._watches[(ref, kind)] = watch
        for key, samples in series.items():
            self._series[key] = Series(units[key], samples)
            self._tracks.pop(key, None)  # bound again to the restored series when next used


def _convert_or_nan(value: float, source: str, target: str) -> float:
    try:
        return convert(value, source, target)
    except UnitError:
        return math.nan


def _add_day(days: list[int], day: int) -> None:
    if not days or day > days[-1]:  # the usual case: a new day
        days.append(day)
        return
    at = bisect.bisect_left(days, day)
    if at == len(days) or days[at] != day:
        days.insert(at, day)


def _drop_day(days: list[int], day: int) -> None:
    at = bisect.bisect_left(days, day)
    if at < len(days) and days[at] == day:
        del days[at]


def _series_slot(kind: str, name: str, day: int) -> str:
    return f"series/{kind}/{name}/{day}"  # day: whole days since the epoch (UTC)


def _episode_slot(key: tuple[str, str, str, str]) -> str:
    return f"episode/{key[1]}/{key[2]}/{key[3]}"


def _watch_slot(kind: str) -> str:
    return f"missing/{kind}"
