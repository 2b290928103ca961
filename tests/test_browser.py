"""The hub page in a real browser: Playwright driving Debian's headless Chromium against a real
gateway with a simulated cuff, on a phone (390x844) and a small touch screen (800x480), in
Swedish and English. axe-core (npm, pinned in tests/a11y) checks every state for accessibility.
Screenshots go to test-artifacts/ (not committed).

These tests never skip: without Chromium or axe-core they fail and say how to install them.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.i18n import catalogue
from tests.configs import ADULT, REFUSER
from tests.hub_harness import PINS, cuff, running_hub

CHROMIUM = Path(os.environ.get("HGW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
TOUCH = {"width": 800, "height": 480}

# One reading a second, a day apart: high (an alert), back to normal (it resolves), and high
# again as the last (an open alert). The page is open before the later ones arrive.
READINGS = [
    {"systolic": 128, "diastolic": 82, "pulse_rate": 71, "measured_at": "2026-11-17T08:00:00"},
    {"systolic": 188, "diastolic": 101, "pulse_rate": 92, "measured_at": "2026-11-18T08:00:00"},
    {"systolic": 134, "diastolic": 85, "pulse_rate": 74, "measured_at": "2026-11-19T08:00:00"},
    {"systolic": 122, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 191, "diastolic": 104, "pulse_rate": 96, "measured_at": "2026-11-21T08:00:00"},
]
INSTRUCTIONS = {
    "sv": "Din sjuksköterska ringer dig i dag. Om du mår dåligt, ring 1177. Vid en nödsituation,"
    " ring 112.",
    "en": "Your nurse will call you today. If you feel unwell, call 1177; in an emergency, 112.",
}
# A number with a unit of a health value, or a blood pressure pair: none may stay after erasure
# (a device's battery percentage is not one).
HEALTH_VALUE = re.compile(r"\d+(?:[.,]\d+)?\s*(?:mmHg|kPa|kg|°C|slag|beats)|\b\d{2,3}/\d{2,3}\b")


def words(language: str, key: str, **params: Any) -> str:
    text = catalogue(language)[key]
    return text.format(**params) if params else text


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium;"
            " run ./install.sh --test (it installs it)"
        )
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run ./install.sh --test (it installs axe-core with npm)")
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def no_accessibility_violations(page: Page, where: str) -> None:
    """axe-core on the page as it is now. Evaluated through the DevTools protocol, so the
    page's Content-Security-Policy (script-src 'self') stays as it is in production."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))"
    )
    assert result == [], f"axe-core found violations {where}: {result}"


async def enter_pin_on_pad(page: Page, language: str, pin: str) -> None:
    """Tap the on-screen keys, as on a touch screen (no keyboard)."""
    for digit in pin:
        await page.locator(f'.pinpad [data-digit="{digit}"]').click()
    await page.get_by_role("button", name=words(language, "page.login.open"), exact=True).click()


DEVICE_NAMES = {"sv": "Blodtrycksmätare", "en": "Blood pressure monitor"}


def alert_config(locale: str, device_language: str | None = None) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["gateway"]["locale"] = locale
        config["alert_instructions"] = {"critical": dict(INSTRUCTIONS)}
        for device in config["devices"]:
            device["name"] = DEVICE_NAMES[device_language or locale]

    return tweak


async def fits_the_screen(page: Page, selector: str, height: int) -> None:
    boxes = await page.eval_on_selector_all(
        selector,
        "nodes => nodes.map(n => [n.getAttribute('aria-labelledby') || n.dataset.kind || n.id,"
        " n.getBoundingClientRect().height])",
    )
    assert boxes, selector
    for name, box_height in boxes:
        assert box_height <= height, f"{name} is {box_height:.0f}px high, the screen {height}px"


CASES = [
    # (page language, hub's locale, browser's language, screen)
    pytest.param("sv", "sv", "en-US", PHONE, id="sv-hub-setting-phone"),
    pytest.param("sv", "en", "sv-SE", TOUCH, id="sv-browser-asks-touch"),
    pytest.param("en", "en", "en-GB", PHONE, id="en-phone"),
    pytest.param("en", "en", "en-GB", TOUCH, id="en-touch"),
]


@pytest.mark.parametrize(("language", "hub_locale", "browser_locale", "screen"), CASES)
async def test_a_person_signs_in_on_the_pin_pad_sees_alert_instructions_withdraws_and_erases(
    tmp_path, browser, language, hub_locale, browser_locale, screen
):
    name = f"{language}-{screen['width']}x{screen['height']}"
    devices = [cuff(READINGS, interval_s=1.0)]
    tweak = alert_config(hub_locale, language)
    async with running_hub(tmp_path, devices=devices, tweak=tweak) as hub:
        context = await browser.new_context(
            viewport=screen, locale=browser_locale, accept_downloads=True, has_touch=True
        )
        page = await context.new_page()
        await page.goto(hub.url + "/")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(
            page.get_by_role("heading", name=words(language, "page.login.title"))
        ).to_be_visible()
        await no_accessibility_violations(page, f"on the sign-in screen ({name})")
        if screen is TOUCH:
            await fits_the_screen(page, "#login", TOUCH["height"])
        await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-sign-in.png")

        # A wrong PIN on the pad is refused in plain words; the right one opens the page.
        await enter_pin_on_pad(page, language, "0000")
        await expect(page.locator("#login-message")).to_have_text(
            words(language, "page.login.wrong_pin")
        )
        await expect(page.locator("#home")).to_be_hidden()
        await enter_pin_on_pad(page, language, PINS[ADULT])
        await expect(
            page.get_by_role("heading", name=words(language, "page.latest.title"))
        ).to_be_visible()
        loaded_at = await page.evaluate("document.body.dataset.loadedAt")

        # Readings arrive from the simulated cuff and show without reloading the page.
        latest = page.locator("#latest .reading .value")
        await expect(latest).to_contain_text("191/104", timeout=20_000)  # the last of the script
        assert await page.evaluate("document.body.dataset.loadedAt") == loaded_at
        await hub.waiter.until("alert.raised", 2)

        # The open alert is first and says what to do; the earlier one, now over, is folded.
        open_alerts = page.locator("#alerts .alert.open")
        await expect(open_alerts).to_have_count(1)
        await expect(open_alerts).to_contain_text(INSTRUCTIONS[language])
        await expect(open_alerts).to_contain_text(words(language, "alert.severity.critical"))
        await expect(open_alerts).to_contain_text("191")
        await expect(page.locator("#trends svg.chart")).to_have_count(1)
        # The first screens, as the README shows them (docs/hub-page.png is the Swedish phone's).
        await page.screenshot(
            path=ARTIFACTS / f"hub-page-{name}-overview.png",
            full_page=True,
            clip={"x": 0, "y": 0, "width": screen["width"], "height": 1500},
        )
        earlier = page.locator("#alerts-earlier")
        await expect(earlier.locator("summary")).to_have_text(
            words(language, "page.alerts.earlier.one", count=1)
        )
        await expect(page.locator("#alerts-resolved .alert")).to_be_hidden()
        await earlier.locator("summary").click()
        await expect(page.locator("#alerts-resolved .alert.resolved")).to_have_count(1)
        await expect(page.locator("#alerts-resolved")).not_to_contain_text(INSTRUCTIONS[language])

        # The 30-day chart: one point a day with its range, the limit as a line, a sentence.
        trend = page.locator('#trends .trend[data-kind="blood_pressure"]')
        await expect(trend.locator("svg.chart circle")).to_have_count(2 * len(READINGS))
        await expect(trend.locator("svg.chart line.limit")).to_have_count(1)
        await expect(trend.locator(".legend")).to_contain_text("180")
        await expect(trend.locator(".sentence")).not_to_be_empty()
        await expect(page.locator("#devices")).to_contain_text(DEVICE_NAMES[language])
        await no_accessibility_violations(page, f"with readings and alerts ({name})")
        await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-readings.png", full_page=True)
        if screen is TOUCH:
            # Every section as it first shows (earlier alerts folded), and a chart with its
            # legend and sentence, fits the screen.
            await earlier.locator("summary").click()
            await expect(page.locator("#alerts-resolved .alert")).to_be_hidden()
            await fits_the_screen(page, "#home > section", TOUCH["height"])
            await fits_the_screen(page, "#trends .trend", TOUCH["height"])
            await trend.scroll_into_view_if_needed()
            await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-chart.png")
        if language == "en" and screen is PHONE:
            await downloads_work(page)

        # Turning off care asks first, saying the care team will no longer get the readings;
        # afterwards a banner says so while it is off.
        care = page.locator('[data-purpose="care"] [role="switch"]')
        await expect(care).to_have_attribute("aria-checked", "true")
        await care.click()
        dialog = page.locator("#withdraw-confirm")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text(words(language, "consent.withdraw_warning.care"))
        await no_accessibility_violations(page, f"asking before withdrawal ({name})")
        await dialog.scroll_into_view_if_needed()
        await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-withdraw-asks.png")
        await page.get_by_role("button", name=words(language, "page.withdraw.yes")).click()
        await expect(care).to_have_attribute("aria-checked", "false")
        banner = page.locator("#monitoring-banner")
        await expect(banner).to_have_text(words(language, "monitoring.stopped.care"))
        assert (
            hub.gateway.consents.is_granted(hub.gateway.rights.subject_ref(ADULT), "care") is False
        )
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-withdrawn.png")

        # Erasure says first that the care team will no longer receive readings or alerts, and
        # leaves no health value on the page, not even the alert cards' values.
        await page.get_by_role("button", name=words(language, "page.erase.button")).click()
        erase_dialog = page.get_by_role("alertdialog", name=words(language, "page.erase.question"))
        await expect(erase_dialog).to_contain_text(words(language, "page.erase.care_team"))
        await no_accessibility_violations(page, f"asking before erasure ({name})")
        await page.get_by_role("button", name=words(language, "page.erase.yes")).click()
        await expect(page.locator("#latest")).to_have_text(words(language, "page.latest.none"))
        await expect(banner).to_have_text(words(language, "monitoring.stopped.both"))
        await expect(page.locator("#alerts")).to_have_text(words(language, "page.alerts.none"))
        await expect(page.locator("#alerts-earlier")).to_be_hidden()
        shown = await page.locator("body").inner_text()
        assert not HEALTH_VALUE.findall(shown), HEALTH_VALUE.findall(shown)
        for reading in READINGS:
            assert str(reading["systolic"]) not in shown
        await no_accessibility_violations(page, f"after erasure ({name})")
        await page.screenshot(path=ARTIFACTS / f"hub-page-{name}-erased.png", full_page=True)
        await context.close()


async def downloads_work(page: Page) -> None:
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download my data").click()
    download = await download_info.value
    assert download.suggested_filename.startswith("my-health-data-")
    saved = ARTIFACTS / "hub-page-export.json"
    await download.save_as(saved)
    exported = orjson.loads(saved.read_bytes())
    assert len(exported["readings"]) == len(READINGS)
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download for a health service (FHIR)").click()
    fhir = await download_info.value
    assert fhir.suggested_filename.endswith(".fhir.json")


@pytest.mark.parametrize("language", ["sv", "en"])
async def test_on_a_shared_tablet_the_next_person_sees_nothing_of_the_one_before(
    tmp_path, browser, language
):
    async with running_hub(
        tmp_path, devices=[cuff(READINGS[:2], interval_s=0.2)], tweak=alert_config(language)
    ) as hub:
        await hub.waiter.until("delivered", 2, destination="care-platform")
        context = await browser.new_context(viewport=TOUCH, has_touch=True)
        page = await context.new_page()
        await page.goto(hub.url + "/")

        # Anna: her readings, an alert, and a consent change with its message.
        await enter_pin_on_pad(page, language, PINS[ADULT])
        await expect(page.locator("#latest .reading .value")).to_contain_text("188/101")
        analytics = page.locator('[data-purpose="analytics"] [role="switch"]')
        await analytics.click()
        await expect(analytics).to_have_attribute("aria-checked", "false")
        await analytics.click()
        allowed = words(
            language, "page.consents.allowed", purpose=words(language, "purpose.analytics.label")
        )
        await expect(page.locator("#consent-message")).to_have_text(allowed)
        await page.get_by_role("button", name=words(language, "page.sign_out")).click()
        await expect(page.locator("#login-message")).to_have_text(
            words(language, "page.signed_out")
        )
        await expect(page.locator("#home")).to_be_hidden()

        # Bertil on the same tablet: none of Anna's readings, alerts, choices or messages.
        await enter_pin_on_pad(page, language, PINS[REFUSER])
        await expect(page.locator("#latest")).to_have_text(words(language, "page.latest.none"))
        await expect(page.locator("#consent-message")).to_have_text("")
        care = page.locator('[data-purpose="care"] [role="switch"]')
        await expect(care).to_have_attribute("aria-checked", "false")
        shown = await page.locator("body").inner_text()
        assert allowed not in shown
        assert "188" not in shown and "128" not in shown
        await expect(page.locator("#alerts")).to_have_text(words(language, "page.alerts.none"))
        # His care is off from the start: the banner tells him his care team is not told.
        await expect(page.locator("#monitoring-banner")).to_have_text(
            words(language, "monitoring.stopped.care")
        )
        await no_accessibility_violations(page, f"for the second person ({language})")
        await page.screenshot(path=ARTIFACTS / f"hub-page-{language}-shared-tablet.png")
        await page.get_by_role("button", name=words(language, "page.sign_out")).click()
        await page.reload()
        await expect(page.locator("#login")).to_be_visible()  # the session is gone
        await context.close()


async def test_the_page_says_in_plain_words_what_the_alert_rules_noticed(tmp_path, browser):
    from tests.test_alert_rules_gateway import SCALE, day, device, send, weight

    advice = "Your heart failure nurse will call you today."

    def rise_with_instructions(config):
        config["alert_rules"] = [
            {
                "kind": "weight",
                "value": "body_weight",
                "rise": 2.0,
                "within": "3d",
                "unit": "kg",
                "instructions": advice,
            }
        ]

    devices = [device(SCALE, "weight")]
    async with running_hub(tmp_path, devices=devices, tweak=rise_with_instructions) as hub:
        context = await browser.new_context(viewport=PHONE)
        page = await context.new_page()
        await page.goto(hub.url + "/")
        await enter_pin_on_pad(page, "en", PINS[ADULT])
        await expect(page.locator("#noticed")).to_contain_text("Nothing noticed")
        await send(hub.gateway, SCALE, weight(80.0, day(0)), weight(80.9, day(1)))
        await send(hub.gateway, SCALE, weight(82.5, day(2)))  # the page hears of it by itself
        noticed = page.locator("#noticed")
        await expect(noticed).to_contain_text("Your weight has gone up 2.5 kg in 3 days")
        await expect(noticed).to_contain_text(advice)
        await page.screenshot(path=ARTIFACTS / "hub-page-noticed.png", full_page=True)
        await context.close()
