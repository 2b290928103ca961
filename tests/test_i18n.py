"""The page's languages: both catalogues hold every message, every message the code asks for
exists, and dates, times and numbers follow the language and the hub's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from devices.profiles import PROFILES
from gateway.api.alert_view import SEVERITIES
from gateway.api.summary import DESTINATION_KINDS, MONITORING_PURPOSES, TREND_VALUES
from gateway.i18n import LANGUAGES, Translator, catalogue, choose_language, placeholders
from gateway.settings import PURPOSES
from tests.hub_harness import running_hub

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"


def keys_asked_for_in_code() -> set[str]:
    """Every message id the page, its script and the summary code name literally."""
    keys: set[str] = set()
    html = (GATEWAY / "static" / "index.html").read_text(encoding="utf-8")
    keys |= {k for k in re.findall(r"\{\{([a-z_.]+)\}\}", html) if k not in ("lang", "messages")}
    script = (GATEWAY / "static" / "app.js").read_text(encoding="utf-8")
    keys |= {f"page.{k}" for k in re.findall(r"\bt\(\s*\"([a-z_.]+)\"", script)}
    for key in re.findall(r"\btp\(\s*\"([a-z_.]+)\"", script):
        keys |= {f"page.{key}.one", f"page.{key}.other"}
    for path in [*GATEWAY.glob("api/*.py"), GATEWAY / "i18n.py"]:
        source = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"\.t\(\s*\"([a-z_.]+)\"", source))
        for key in re.findall(r"\.plural\(\s*\"([a-z_.]+)\"", source):
            keys |= {f"{key}.one", f"{key}.other"}
    return keys


def keys_built_from_values() -> set[str]:
    """Message ids made from a value (a kind, a purpose, a severity): one for each value."""
    keys = {f"kind.{kind}" for kind in PROFILES}  # a profile names the kind it reads
    keys |= {f"value.{name}" for values in TREND_VALUES.values() for name, _ in values}
    keys |= {f"purpose.{p}.{part}" for p in PURPOSES for part in ("label", "explain")}
    keys |= {f"destination.{kind}" for kind in DESTINATION_KINDS}
    keys |= {"basis.consent", "basis.vital_interest"}
    keys |= {f"alert.severity.{s}" for s in SEVERITIES}
    keys |= {
        f"alert.{part}.{way}"
        for part in ("title", "detail", "limit_only")
        for way in ("above", "below")
    }
    keys |= {f"monitoring.stopped.{p}" for p in (*MONITORING_PURPOSES, "both")}
    keys |= {f"consent.withdraw_warning.{p}" for p in MONITORING_PURPOSES}
    keys |= {f"trend.{way}" for way in ("up", "down", "steady")}
    keys |= {f"history.{k}.{part}" for k in ("paused", "resumed") for part in ("title", "detail")}
    keys |= {"time.today_at.inline", "time.yesterday_at.inline"}
    return keys


def test_both_languages_hold_the_same_messages_with_the_same_placeholders():
    swedish, english = catalogue("sv"), catalogue("en")
    assert set(swedish) == set(english), {
        "only in Swedish": sorted(set(swedish) - set(english)),
        "only in English": sorted(set(english) - set(swedish)),
    }
    for key in english:
        assert english[key].strip() and swedish[key].strip(), key
        assert placeholders(english[key]) == placeholders(swedish[key]), key
        if key.endswith(".one"):
            assert key.removesuffix(".one") + ".other" in english, key


def test_every_message_the_code_asks_for_exists_in_both_languages():
    wanted = keys_asked_for_in_code() | keys_built_from_values()
    assert len(wanted) > 100  # the scan found the code's messages
    for language in LANGUAGES:
        missing = sorted(wanted - set(catalogue(language)))
        assert not missing, f"missing in {language}: {missing}"


def test_swedish_is_really_swedish():
    """A catalogue copied from English would pass the other tests."""
    swedish, english = catalogue("sv"), catalogue("en")
    same = [k for k in english if swedish[k] == english[k] and re.search("[a-z]{4}", english[k])]
    allowed = {
        "destination.named",
        "alert.what",
        "latest.when_from",
        "time.day_pattern",
        "chart.legend",
        "history.export.detail",
        "value.bmi",
    }
    assert set(same) <= allowed, sorted(set(same) - allowed)


@pytest.mark.parametrize(
    ("configured", "header", "expected"),
    [
        ("sv", "en-GB,en;q=0.9", "sv"),  # the hub is Swedish
        ("en", "sv-SE,sv;q=0.9,en;q=0.8", "sv"),  # the browser asks for Swedish
        ("en", "en-US,en;q=0.9,sv;q=0.5", "en"),
        ("en", "de-DE,sv;q=0.4", "sv"),  # the first of our languages it names
        ("en", "fr-FR", "en"),
        ("en", None, "en"),
        ("en", "sv;q=0", "en"),  # q=0 means "not this"
    ],
)
def test_the_language_is_swedish_when_the_hub_or_the_browser_asks_for_it(
    configured, header, expected
):
    assert choose_language(configured, header) == expected


def test_times_are_in_the_hubs_zone_and_the_languages_words():
    stockholm = ZoneInfo("Europe/Stockholm")
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    late = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # 00:30 on the 30th in Stockholm
    assert Translator("sv", stockholm).when(late, now) == "I dag kl. 00:30"
    assert Translator("en", stockholm).when(late, now) == "Today at 00:30"
    assert Translator("en", UTC).when(late, now) == "Yesterday at 23:30"
    older = "2026-11-23T08:00:00+00:00"
    assert Translator("sv", stockholm).when(older, now) == "måndag 23 november kl. 09:00"
    assert Translator("en", stockholm).when(older, now) == "Monday 23 November at 09:00"
    # A device's own clock (no zone) is read as the hub's local time.
    assert Translator("sv", stockholm).when("2026-11-30T08:00:00", now) == "I dag kl. 08:00"
    assert Translator("sv", stockholm).ago(older, now) == "för 7 dagar sedan"
    assert Translator("en", stockholm).ago("2026-11-30T11:59:00+00:00", now) == "just now"


def test_numbers_and_counts_follow_the_language():
    sv, en = Translator("sv", UTC), Translator("en", UTC)
    assert sv.number(36.75) == "36,8" and en.number(36.75) == "36.8"
    assert sv.number(1234.0) == "1\xa0234" and en.number(1234.0) == "1,234"
    assert en.plural("time.days_ago", 1) == "1 day ago"
    assert en.plural("time.days_ago", 2) == "2 days ago"
    assert sv.plural("time.days_ago", 1) == "för 1 dag sedan"


async def test_the_page_is_served_in_the_language_the_hub_or_the_browser_chooses(tmp_path):
    async with running_hub(tmp_path) as hub, aiohttp.ClientSession() as http:
        async with http.get(hub.url + "/", headers={"Accept-Language": "sv-SE"}) as response:
            swedish = await response.text()
            assert response.headers["Vary"] == "Accept-Language"
        async with http.get(hub.url + "/", headers={"Accept-Language": "en-GB"}) as response:
            english = await response.text()
    assert '<html lang="sv">' in swedish and "Min hälsohubb" in swedish
    assert '<html lang="en">' in english and "My health hub" in english
    for page in (swedish, english):
        assert "{{" not in page  # every placeholder was filled
    assert '"page.login.wrong_pin":"PIN-koden stämmer inte. Försök igen."' in swedish


def test_what_a_window_rule_noticed_is_worded_in_the_pages_language():
    from gateway.api.alert_view import window_text

    rise = {
        "value": "body_weight",
        "kind": "weight",
        "amount": 2.3,
        "unit": "kg",
        "window_s": 259200,
    }
    assert window_text(Translator("sv", UTC), "change.rise", rise) == (
        "Ditt värde för vikt har gått upp 2,3 kg på 3 dagar"
    )
    assert window_text(Translator("en", UTC), "change.rise", rise) == (
        "Your weight has gone up 2.3 kg in 3 days"
    )
    gap = {"kind": "weight", "window_s": 86400}
    assert window_text(Translator("sv", UTC), "missing.longer_than", gap) == (
        "Ingen mätning av vikt på 1 dag eller mer"
    )
