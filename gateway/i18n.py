"""The hub page's languages: one gettext catalogue per language, and Babel for the CLDR rules.

Messages live in ``gateway/locale/<language>.po`` (standard PO files, read with Babel when a
language is first needed: no compile step, and translators' tools open them as they are). The
message ids are stable keys (``alert.instructions.default``), so every text, English included,
lives in a catalogue and a test can check that both languages carry every message. Placeholders
are ``{name}``; a message that depends on a count has a ``.one`` and an ``.other`` form, chosen
by CLDR's plural rules (Babel here, ``Intl.PluralRules`` on the page).

Dates, times and numbers follow the language's CLDR conventions (Babel) in the hub's time zone,
never the browser's: the page shows the hub's formatted strings, so an sv-SE browser reading an
English page does not mix "18.04" or "idag" into it, and the other way round.

Babel (about 0.8 MB of a running hub's memory) is imported where it is first used, not with this
module: the API server imports this module for ``choose_language``, and a hub whose page is
never opened has no texts to format.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from importlib import resources
from typing import Any

LANGUAGES = ("sv", "en")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class MissingMessage(KeyError):
    """A message id that a catalogue does not hold (a programming error, found by the tests)."""


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of one language: message id -> text (header and fuzzy entries left out)."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; use one of {', '.join(LANGUAGES)}")
    from babel.messages.pofile import read_po

    source = resources.files("gateway").joinpath("locale", f"{language}.po")
    with source.open("rb") as handle:
        parsed = read_po(handle, locale=language)
    return {
        str(message.id): str(message.string)
        for message in parsed
        if message.id and message.string and not message.fuzzy
    }


def choose_language(configured: str, accept_language: str | None) -> str:
    """Swedish when the hub is set to Swedish or the browser prefers Swedish to English.

    ``Accept-Language`` is read in the browser's order of preference (q-values honoured); the
    first of our languages it names wins; a browser that names neither gets the hub's setting.
    """
    if configured == "sv":
        return "sv"
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q=([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            wanted.append((-quality, index, primary))
    return min(wanted)[2] if wanted else configured


@dataclass(frozen=True, slots=True)
class Translator:
    """Texts, numbers and times for one page view, in one language and the hub's time zone."""

    language: str
    zone: tzinfo

    def t(self, key: str, **params: Any) -> str:
        text = catalogue(self.language).get(key)
        if text is None:
            raise MissingMessage(f"{key!r} is not in the {self.language} catalogue")
        return text.format(**params) if params else text

    def get(self, key: str, default: str, **params: Any) -> str:
        """A message that may not exist for every value (a kind or unit we have no word for)."""
        text = catalogue(self.language).get(key)
        if text is None:
            return default
        return text.format(**params) if params else text

    def plural(self, key: str, count: int, **params: Any) -> str:
        from babel import Locale

        form = Locale.parse(self.language).plural_form(count)
        found = catalogue(self.language).get(f"{key}.{form}")
        text = found if found is not None else self.t(f"{key}.other")
        return text.format(count=self.number(count), **params)

    def number(self, value: float) -> str:
        """One decimal at most, in the language's notation (128,5 in Swedish)."""
        from babel.numbers import format_decimal

        return format_decimal(round(value, 1), "#,##0.#", locale=self.language)

    def local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone)

    def clock(self, moment: datetime) -> str:
        from babel.dates import format_time

        return format_time(self.local(moment), "HH:mm", locale=self.language)

    def day(self, moment: datetime | date) -> str:
        """A short day for chart axes: "30 nov." / "30 Nov"."""
        from babel.dates import format_date

        return format_date(moment, "d MMM", locale=self.language)

    def when(self, value: str | datetime | None, now: datetime, inline: bool = False) -> str:
        """ "Today at 18:04", "Yesterday at 07:30", "Monday 23 November at 08:00"; ``inline``
        for use inside a sentence ("today at 18:04")."""
        moment = _parse(value, self.zone)
        if moment is None:
            return ""
        local, today = self.local(moment), self.local(now).date()
        time = self.clock(local)
        if local.date() == today:
            return self.t("time.today_at.inline" if inline else "time.today_at", time=time)
        if local.date() == today - timedelta(days=1):
            return self.t("time.yesterday_at.inline" if inline else "time.yesterday_at", time=time)
        from babel.dates import format_date

        day = format_date(local, self.t("time.day_pattern"), locale=self.language)
        return self.t("time.day_at", day=day, time=time)

    def ago(self, value: str | datetime | None, now: datetime) -> str:
        moment = _parse(value, self.zone)
        if moment is None:
            return self.t("time.never")
        seconds = max(0.0, (now - moment).total_seconds())
        if seconds < 90:
            return self.t("time.just_now")
        if seconds < 3600:
            return self.plural("time.minutes_ago", round(seconds / 60))
        if seconds < 86400 * 1.5:
            return self.plural("time.hours_ago", round(seconds / 3600))
        return self.plural("time.days_ago", round(seconds / 86400))

    def page_messages(self) -> dict[str, str]:
        """What the page's script needs (its own messages, under ``page.``)."""
        return {
            key: text for key, text in catalogue(self.language).items() if key.startswith("page.")
        }


def _parse(value: str | datetime | None, zone: tzinfo) -> datetime | None:
    """An aware instant; a naive time (a device's own clock) is read in the hub's zone."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))
