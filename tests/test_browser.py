"""The hub page in a real browser: Playwright driving Debian's headless Chromium against a real
gateway with a simulated cuff. Screenshots go to test-artifacts/ (not committed).

These tests never skip: without Chromium they fail and say how to install it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.configs import ADULT
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
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 412, "height": 915}

# One reading every 2 s: the page is open before the later ones arrive.
READINGS = [
    {"systolic": 128, "diastolic": 82, "pulse_rate": 71, "measured_at": "2026-11-18T08:00:00"},
    {"systolic": 191, "diastolic": 104, "pulse_rate": 96, "measured_at": "2026-11-19T08:00:00"},
    {"systolic": 134, "diastolic": 85, "pulse_rate": 74, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 122, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-21T08:00:00"},
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium;"
            " run ./install.sh --test (it installs it)"
        )
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def sign_in(page: Page, pin: str) -> None:
    await page.get_by_label("Enter your PIN to see your readings").fill(pin)
    await page.get_by_role("button", name="Open").click()


async def test_a_person_signs_in_sees_readings_arrive_withdraws_consent_and_downloads(
    tmp_path, browser
):
    async with running_hub(tmp_path, devices=[cuff(READINGS, interval_s=2.0)]) as hub:
        context = await browser.new_context(viewport=PHONE, accept_downloads=True)
        page = await context.new_page()
        await page.goto(hub.url + "/")

        # A wrong PIN is refused, and says so in plain words.
        await sign_in(page, "0000")
        await expect(page.locator("#login-message")).to_have_text(
            "That PIN is not right. Please try again."
        )
        await expect(page.locator("#home")).to_be_hidden()
        await page.screenshot(path=ARTIFACTS / "hub-page-wrong-pin.png")

        await sign_in(page, PINS[ADULT])
        await expect(page.get_by_role("heading", name="My latest readings")).to_be_visible()
        loaded_at = await page.evaluate("document.body.dataset.loadedAt")

        # A reading arrives from the simulated cuff and shows up without reloading the page.
        latest = page.locator("#latest .reading .value")
        await expect(latest).to_have_count(1, timeout=15_000)
        first = await latest.inner_text()
        await expect(latest).not_to_have_text(first, timeout=15_000)
        await expect(latest).to_contain_text("122/79", timeout=15_000)  # the last of the script
        assert await page.evaluate("document.body.dataset.loadedAt") == loaded_at
        await expect(page.locator("#trends svg.chart")).to_have_count(1)
        await expect(page.locator("#alerts")).to_contain_text(
            "High upper (systolic) blood pressure"
        )
        await expect(page.locator("#history")).to_contain_text("Sent to care-platform")
        await expect(page.locator("#devices")).to_contain_text("Blood pressure monitor")

        # Withdrawing analytics consent is immediate, says what it purged, and is listed.
        analytics = page.locator('[data-purpose="analytics"] [role="switch"]')
        await expect(analytics).to_have_attribute("aria-checked", "true")
        await analytics.click()
        await expect(page.locator("#consent-message")).to_contain_text(
            "You withdrew your consent: Improving the service."
        )
        await expect(page.locator("#consent-message")).to_contain_text(
            "0 waiting items were deleted"
        )
        await expect(analytics).to_have_attribute("aria-checked", "false")
        await expect(page.locator("#history")).to_contain_text(
            "Consent withdrawn: Improving the service"
        )
        ref = hub.gateway.rights.subject_ref(ADULT)
        assert hub.gateway.consents.is_granted(ref, "analytics") is False
        await page.screenshot(path=ARTIFACTS / "hub-page-phone.png", full_page=True)

        # Download my data: a JSON file with the readings.
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

        # Erasure asks first; "No" keeps everything, "Yes" deletes and says what.
        await page.get_by_role("button", name="Delete my data from the hub…").click()
        await expect(page.get_by_role("alertdialog")).to_be_visible()
        await page.get_by_role("button", name="No, keep it").click()
        await expect(page.get_by_role("alertdialog")).to_be_hidden()
        await page.get_by_role("button", name="Delete my data from the hub…").click()
        await page.get_by_role("button", name="Yes, delete my data").click()
        await expect(page.locator("#erase-message")).to_contain_text(
            f"Deleted: {len(READINGS)} readings"
        )
        await expect(page.locator("#latest")).to_contain_text("No readings yet")
        await page.screenshot(path=ARTIFACTS / "hub-page-erased.png", full_page=True)
        await context.close()


async def test_the_page_on_a_wide_screen_and_signing_out(tmp_path, browser):
    async with running_hub(tmp_path, devices=[cuff(READINGS[:3], interval_s=0.3)]) as hub:
        await hub.waiter.until("delivered", 3, destination="care-platform")
        context = await browser.new_context(viewport={"width": 760, "height": 1500})
        page = await context.new_page()
        await page.goto(hub.url + "/")
        await sign_in(page, PINS[ADULT])
        await expect(page.locator("#latest .reading .value")).to_contain_text("134/85")
        await expect(page.locator("#history")).to_contain_text("Sent to nurse-alerts")
        await page.screenshot(path=ARTIFACTS / "hub-page-desktop.png", full_page=True)
        await page.screenshot(path=ARTIFACTS / "hub-page-first-screen.png")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.locator("#login-message")).to_have_text("You are signed out.")
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
        await sign_in(page, PINS[ADULT])
        await expect(page.locator("#noticed")).to_contain_text("Nothing noticed")
        await send(hub.gateway, SCALE, weight(80.0, day(0)), weight(80.9, day(1)))
        await send(hub.gateway, SCALE, weight(82.5, day(2)))  # the page hears of it by itself
        noticed = page.locator("#noticed")
        await expect(noticed).to_contain_text("Your weight has gone up 2.5 kg in 3 days")
        await expect(noticed).to_contain_text(advice)
        await page.screenshot(path=ARTIFACTS / "hub-page-noticed.png", full_page=True)
        await context.close()
