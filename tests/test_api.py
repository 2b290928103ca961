"""The local HTTP API through a real gateway: auth, CSRF, LAN lock, OpenAPI, rights over HTTP."""

from __future__ import annotations

import re
import stat

import aiohttp
import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from openapi_spec_validator import validate

from gateway.api.server import ROUTES
from tests.configs import ADULT, REFUSER
from tests.hub_harness import PINS, Hub, cuff, running_hub, sign_in
from tests.receivers import Answer

# Scripted device timestamps: the simulated cuff stamps unscripted readings in whole seconds,
# and two readings with the same device time are the same reading.
HIGH_THEN_NORMAL = [
    {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 121, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:05:00"},
]


def client(**kwargs) -> aiohttp.ClientSession:
    # The default jar refuses cookies from IP-address hosts; a browser keeps them.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kwargs)


def concrete(path: str) -> str:
    return path.replace("{subject}", ADULT).replace("{name}", "app.js")


async def test_openapi_document_is_valid_and_matches_the_routes(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        async with http.get(hub.url + "/api/openapi.json", headers=hub.auth()) as response:
            assert response.status == 200
            spec = await response.json()
        # the running app serves exactly the route table (aiohttp adds HEAD for each GET)
        routes = {
            (route.method, route.resource.canonical)
            for route in hub.gateway.api._runner.app.router.routes()  # type: ignore[union-attr]
            if route.method != "HEAD"
        }
    validate(spec)  # OpenAPI 3.1, by an independent validator
    assert spec["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    served = {(method, path) for method, path, _handler in ROUTES}
    assert documented == served
    assert routes == served


async def test_every_api_route_needs_the_token(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        for method, path, _handler in ROUTES:
            if not path.startswith("/api/"):
                continue
            for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "x"}):
                async with http.request(method, hub.url + concrete(path), headers=headers) as r:
                    assert r.status == 401, (method, path, headers)
                    assert r.headers["Content-Type"].startswith("application/json")
                    assert "error" in await r.json()
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(hub.url + "/api/status", headers=hub.auth()) as response:
            assert response.status == 200
            status = await response.json()
        assert {d["name"] for d in status["destinations"]} == {"care-platform", "nurse-alerts"}
        # the probes are open (to the allowed networks) for monitoring; the metrics need the token
        for path in ("/healthz", "/readyz"):
            async with http.get(hub.url + path) as response:
                assert response.status == 200, path
        async with http.get(hub.url + "/metrics") as response:
            assert response.status == 401
        async with http.get(hub.url + "/metrics", headers=hub.auth()) as response:
            assert response.status == 200


async def test_token_file_is_created_private_when_not_configured(tmp_path):
    async with running_hub(tmp_path) as hub:
        path = hub.settings.gateway.data_dir / "api-token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(hub.token) >= 32


async def test_cross_site_changes_are_refused(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        consent = f"{hub.url}/api/subjects/{ADULT}/consent"
        # signing in from another site is refused too
        async with http.post(
            hub.url + "/session", json={"pin": PINS[ADULT]}, headers={"Origin": "http://evil.test"}
        ) as response:
            assert response.status == 403
        csrf = await sign_in(http, hub, PINS[ADULT])
        attempts = [
            {"Origin": "http://evil.test", "X-CSRF-Token": csrf},
            {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf},
            {"Origin": hub.url},  # same origin, but no CSRF token
            {"X-CSRF-Token": "guessed"},
        ]
        for headers in attempts:
            async with http.put(consent, json={"analytics": False}, headers=headers) as response:
                assert response.status == 403, headers
                assert "error" in await response.json()
        async with http.get(f"{hub.url}/api/subjects/{ADULT}") as response:
            access = await response.json()
        assert access["consents"]["analytics"]["granted"] is True  # nothing changed
        async with http.put(
            consent,
            json={"analytics": False},
            headers={"Origin": hub.url, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf},
        ) as response:
            assert response.status == 200
            assert (await response.json())["changed"] == {"analytics": False}


async def test_a_page_session_reaches_only_its_own_person(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        await sign_in(http, hub, PINS[ADULT])
        for path in (f"/api/subjects/{REFUSER}", "/api/status", "/api/audit", "/api/dead-letters"):
            async with http.get(hub.url + path) as response:
                assert response.status == 403, path
        async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary") as response:
            assert response.status == 200
        async with http.get(hub.url + "/session") as response:
            session = await response.json()
        assert session["signed_in"] and session["subject"] == ADULT and session["via"] == "pin"
        # signing out needs the CSRF token, then the cookie no longer works
        async with http.delete(hub.url + "/session") as response:
            assert response.status == 403
        async with http.delete(
            hub.url + "/session", headers={"X-CSRF-Token": session["csrf"]}
        ) as response:
            assert response.status == 200
        async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary") as response:
            assert response.status == 401


async def test_cookie_flags_and_token_sign_in(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        async with http.post(
            hub.url + "/session", json={"token": hub.token, "subject": REFUSER}
        ) as response:
            assert response.status == 201
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on the LAN: a Secure cookie would be dropped
        async with http.get(f"{hub.url}/api/subjects/{REFUSER}/summary") as response:
            assert response.status == 200
        async with http.post(hub.url + "/session", json={"token": hub.token}) as response:
            assert response.status == 400
            assert "subject" in (await response.json())["error"]


async def test_wrong_pins_lock_sign_in_for_the_whole_hub(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        for _ in range(4):
            async with http.post(hub.url + "/session", json={"pin": "0000"}) as response:
                assert response.status == 401
                assert (await response.json())["error"] == "wrong PIN"
        async with http.post(hub.url + "/session", json={"pin": "0000"}) as response:
            assert response.status == 429  # the fifth wrong try starts a lock
            assert int(response.headers["Retry-After"]) == 30
        async with http.post(hub.url + "/session", json={"pin": PINS[ADULT]}) as response:
            assert response.status == 429  # even the right PIN waits
            assert "try again" in (await response.json())["error"]


async def test_requests_from_outside_the_allowed_networks_are_refused(tmp_path):
    def loopback_not_allowed(config):
        config["gateway"]["api"]["allowed_networks"] = ["10.0.0.0/8"]

    async with running_hub(tmp_path, tweak=loopback_not_allowed) as hub:
        async with client() as outsider:
            for path in ("/", "/healthz", "/metrics", "/api/status"):
                # closed before anything is read: no HTTP answer at all
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with outsider.get(hub.url + path, headers=hub.auth()):
                        pass


async def test_errors_are_json_with_the_field_named(tmp_path):
    async with running_hub(tmp_path) as hub, client(headers=hub_auth_header(hub)) as http:
        consent = f"{hub.url}/api/subjects/{ADULT}/consent"
        cases = [
            ("PUT", consent, b'{"care": "no"}', 400, "care: must be true or false"),
            ("PUT", consent, b'{"bogus": false}', 400, "bogus: unknown purpose"),
            ("PUT", consent, b"{}", 400, "name at least one purpose"),
            ("PUT", consent, b"[1]", 400, "must be a JSON object"),
            ("PUT", consent, b"{not json", 400, "not valid JSON"),
            (
                "PUT",
                f"{hub.url}/api/subjects/{ADULT}/restriction",
                b'{"restricted": "yes"}',
                400,
                "restricted: must be true or false",
            ),
            ("POST", hub.url + "/api/dead-letters/requeue", b'{"ids": "1"}', 400, "ids:"),
            ("GET", f"{hub.url}/api/subjects/{ADULT}/export?format=pdf", b"", 400, "format:"),
            ("GET", f"{hub.url}/api/audit?limit=0", b"", 400, "limit:"),
            ("GET", f"{hub.url}/api/subjects/000000000000", b"", 404, "no subject"),
            ("DELETE", f"{hub.url}/api/subjects/000000000000/data", b"", 404, "no subject"),
            ("GET", hub.url + "/api/nothing-here", b"", 404, "not found"),
            ("POST", hub.url + "/api/status", b"", 405, "method not allowed"),
        ]
        for method, url, body, status, message in cases:
            async with http.request(method, url, data=body) as response:
                assert response.status == status, (method, url, await response.text())
                assert message in (await response.json())["error"], (method, url)


def hub_auth_header(hub: Hub) -> dict[str, str]:
    return hub.auth()


async def test_export_and_erasure_through_http(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(HIGH_THEN_NORMAL)]) as hub:
        await hub.waiter.until("delivered", 2, destination="care-platform")
        async with client(headers=hub.auth()) as http:
            base = f"{hub.url}/api/subjects/{ADULT}"
            async with http.get(base + "/export?format=json") as response:
                assert response.status == 200
                disposition = response.headers["Content-Disposition"]
                exported = orjson.loads(await response.read())
            assert re.fullmatch(r'attachment; filename="my-health-data-[0-9-]+\.json"', disposition)
            assert ADULT not in disposition
            assert exported["format"] == "health-gateway/export-v1"
            assert [r["values"]["systolic"]["value"] for r in exported["readings"]] == [190, 121]
            assert any(e["event"] == "disclosure" for e in exported["audit"])

            async with http.get(base + "/export?format=fhir") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("application/fhir+json")
                assert "attachment" in response.headers["Content-Disposition"]
                bundle = orjson.loads(await response.read())
            Bundle.model_validate(bundle)
            assert bundle["type"] == "collection"

            async with http.delete(base + "/data") as response:
                assert response.status == 200
                erased = (await response.json())["erased"]
            assert erased["readings"] == 2
            async with http.get(base) as response:
                access = await response.json()
            assert access["readings"] == []
            # All that may wait is the care team's monitoring.stopped notice (sent after it).
            assert {q["category"] for q in access["queued"]} <= {"notice"}
            assert all(not c["granted"] for c in access["consents"].values())
            async with http.get(f"{hub.url}/api/audit?subject={ADULT}&event=subject.erased") as r:
                audit = await r.json()
            assert audit["chain"]["ok"] is True
            assert [e["data"]["source"] for e in audit["entries"]] == ["operator-api"]
            assert "197001011234" not in orjson.dumps(audit["entries"]).decode()


async def test_consent_withdrawal_through_the_page_session_purges_the_queue(tmp_path):
    # The care platform is down, so readings wait in the outbox until consent is withdrawn.
    async with running_hub(
        tmp_path, devices=[cuff(HIGH_THEN_NORMAL)], care_answer=Answer(503)
    ) as hub:
        await hub.waiter.until_queued("care-platform", 2)
        await hub.waiter.until("retry", destination="care-platform")
        async with client() as http:
            csrf = await sign_in(http, hub, PINS[ADULT])
            async with http.put(
                f"{hub.url}/api/subjects/{ADULT}/consent",
                json={"care": False, "alerting": True},
                headers={"X-CSRF-Token": csrf},
            ) as response:
                assert response.status == 200
                change = await response.json()
        assert change["changed"] == {"care": False}
        assert change["unchanged"] == ["alerting"]
        assert change["purged"] == {"care": 2}
        assert change["consents"]["care"] is False
        async with client(headers=hub.auth()) as http:
            async with http.get(hub.url + "/api/status") as response:
                status = await response.json()
            care = next(d for d in status["destinations"] if d["name"] == "care-platform")
            assert care["queued"] == 0
            async with http.get(
                f"{hub.url}/api/audit?subject={ADULT}&event=consent.withdrawn.purged"
            ) as response:
                [entry] = (await response.json())["entries"]
            assert entry["data"] == {"purpose": "care", "queued_items_removed": 2}
            async with http.get(f"{hub.url}/api/audit?subject={ADULT}&event=consent.changed") as r:
                sources = [e["data"]["source"] for e in (await r.json())["entries"]]
            assert sources[0] == "hub-page"


async def test_dead_letters_listed_and_requeued(tmp_path):
    async with running_hub(
        tmp_path, devices=[cuff(HIGH_THEN_NORMAL[:1])], care_answer=Answer(422)
    ) as hub:
        await hub.waiter.until("dead_letter", destination="care-platform")
        hub.care.default = Answer(200)
        async with client(headers=hub.auth()) as http:
            async with http.get(hub.url + "/api/dead-letters") as response:
                [dead] = (await response.json())["dead_letters"]
            assert dead["destination"] == "care-platform" and dead["status"] == 422
            async with http.post(
                hub.url + "/api/dead-letters/requeue", json={"ids": [dead["id"], 999]}
            ) as response:
                assert await response.json() == {"requeued": [dead["id"]], "not_found": [999]}
            await hub.waiter.until("delivered", destination="care-platform")
            async with http.get(hub.url + "/api/dead-letters") as response:
                assert (await response.json())["dead_letters"] == []
            async with http.put(
                f"{hub.url}/api/subjects/{ADULT}/restriction", json={"restricted": True}
            ) as response:
                assert await response.json() == {"restricted": True}
            assert hub.gateway.restrictions.is_restricted(hub.gateway.rights.subject_ref(ADULT))


async def test_page_and_static_files_are_served_with_a_strict_policy(tmp_path):
    async with running_hub(tmp_path) as hub, client() as http:
        async with http.get(hub.url + "/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            policy = response.headers["Content-Security-Policy"]
            html = await response.text()
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "http://" not in html and "https://" not in html  # nothing from elsewhere
        for name in ("app.js", "app.css"):
            async with http.get(f"{hub.url}/static/{name}") as response:
                assert response.status == 200
                etag = response.headers["ETag"]
            async with http.get(
                f"{hub.url}/static/{name}", headers={"If-None-Match": etag}
            ) as response:
                assert response.status == 304
        async with http.get(hub.url + "/static/..%2Fsettings.py") as response:
            assert response.status == 404


async def test_events_stream_tells_the_page_about_a_new_reading(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(HIGH_THEN_NORMAL, interval_s=0.3)]) as hub:
        async with client() as http:
            await sign_in(http, hub, PINS[ADULT])
            async with http.get(f"{hub.url}/api/subjects/{ADULT}/events") as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                seen = []
                async for line in response.content:
                    seen.append(line.decode().strip())
                    if seen[-1] == "event: changed":
                        break
        assert "event: hello" in seen


async def test_the_summary_shows_a_vital_interest_alert_and_the_trend(tmp_path):
    def vital(config):
        config["subjects"][0]["consent"]["alerting"] = False
        config["alert_rules"][0]["vital_interest"] = True

    async with running_hub(tmp_path, devices=[cuff(HIGH_THEN_NORMAL)], tweak=vital) as hub:
        await hub.waiter.until(
            "delivered", destination="nurse-alerts", legal_basis="vital_interest"
        )
        await hub.waiter.until("delivered", 2, destination="care-platform")
        async with client(headers=hub.auth()) as http:
            async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary") as response:
                summary = await response.json()
    [raised] = [a for a in summary["alerts"] if a["type"] == "alert.raised"]
    assert raised["vital_interest"] is True
    assert raised["title"] == "Blood pressure, upper value (systolic): above your limit"
    assert raised["open"] is False  # the normal reading after it resolved it
    assert "vital interest" in raised["sent"][0]["text"]
    vital_disclosures = [h for h in summary["history"] if h.get("legal_basis") == "vital_interest"]
    assert vital_disclosures and "vital interest" in vital_disclosures[0]["detail"]
    [alerting] = [c for c in summary["consents"] if c["purpose"] == "alerting"]
    assert alerting["granted"] is False and "life is in danger" in alerting["note"]
    [latest] = summary["latest"]
    assert latest["headline"] == "121/79" and latest["unit"] == "mmHg"
    [trend] = summary["trends"]
    assert trend["readings"] == 2 and trend["svg"].startswith("<svg")
    # Both readings are of one day: one point per value for the day, with a bar for its range,
    # and the alert rule's limit as a dashed line.
    assert trend["days"] == 1
    assert trend["svg"].count("<circle") == 2
    assert trend["svg"].count('class="range"') == 2
    assert trend["svg"].count('class="limit"') == 1
    assert [limit["value"] for limit in trend["limits"]] == [180]
    assert "<script" not in trend["svg"] and "style=" not in trend["svg"]
