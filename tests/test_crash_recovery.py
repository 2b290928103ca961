"""kill -9 while the care platform is down, restart with the device silent: nothing is lost;
kill -9 after the POST reached the real FHIR server and before its answer: nothing is created
twice."""

from __future__ import annotations

import pytest

from tests.configs import ADULT, base_config, free_port, webhook_secret, write_config
from tests.receivers import Answer, Receiver
from tests.test_e2e import GatewayProcess, simulated_cuff


def panel_entries(request) -> list[dict]:
    return [
        e["resource"]
        for e in request.json()["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "150020"
    ]


def panels(receiver: Receiver) -> list[dict]:
    return [
        e["resource"]
        for r in receiver.accepted
        for e in r.json()["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "150020"
    ]


async def test_queued_readings_survive_kill_9(tmp_path, care_platform):
    port = free_port()
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        f"http://127.0.0.1:{port}/fhir",
        f"http://127.0.0.1:{free_port()}/h",
    )
    config["gateway"]["log_level"] = "debug"
    config["destinations"][0]["retry_max_s"] = 0.5
    readings = [
        {
            "systolic": 120 + i,
            "diastolic": 80,
            "pulse_rate": 60,
            "measured_at": f"2026-11-20T08:0{i}:00",
        }
        for i in range(5)
    ]
    config["devices"] = [simulated_cuff(ADULT, readings)]
    path = write_config(tmp_path / "gateway.toml", config)

    first = GatewayProcess(path)
    await first.start()
    try:
        await first.wait_until(
            lambda events: (
                sum(e.get("count", 0) for e in events if e.get("event") == "readings_stored") >= 5
            )
        )
        await first.wait_for_event(lambda e: e.get("event") == "delivery_retry")  # platform down
    finally:
        first.kill()  # SIGKILL: no shutdown code runs
    await first.process.wait()

    care = await care_platform.receiver().start(port)
    second = GatewayProcess(path)
    await second.start()
    try:
        await care.wait_for(lambda r: len(panels(r)) >= 5)
        code = await second.stop()
    except TimeoutError:
        pytest.fail("timed out; gateway output:\n" + "\n".join(second.lines[-40:]))
    finally:
        second.kill()
        await care.stop()
    assert code == 0
    got = panels(care)
    assert len({p["identifier"][0]["value"] for p in got}) == len(got) == 5
    systolic = sorted(
        c["valueQuantity"]["value"]
        for p in got
        for c in p["component"]
        if c["code"]["coding"][0]["code"] == "150021"
    )
    assert systolic == [120, 121, 122, 123, 124]
    stored_again = [e for e in second.events if e.get("event") == "readings_stored"]
    assert stored_again == []  # the cuff did not replay: the restart only delivered the queue
    if care_platform.medplum is not None:
        stored = await care_platform.medplum.search("Observation", code="150020")
        assert sorted(o["identifier"][0]["value"] for o in stored) == sorted(
            p["identifier"][0]["value"] for p in got
        )


async def test_a_kill_9_after_the_post_and_before_its_answer_creates_nothing_new_on_resend(
    tmp_path, medplum
):
    """The POST reaches the real server and is applied; the proxy holds the answer, the gateway
    is killed (the item is still queued), and the restarted gateway sends it again."""
    port = free_port()
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        f"http://127.0.0.1:{port}/fhir",
        f"http://127.0.0.1:{free_port()}/h",
    )
    config["gateway"]["log_level"] = "debug"
    config["destinations"][0]["timeout_s"] = 600  # only the kill ends the held request
    readings = [
        {
            "systolic": 130 + i,
            "diastolic": 85,
            "pulse_rate": 70,
            "measured_at": f"2026-11-20T09:0{i}:00",
        }
        for i in range(3)
    ]
    config["devices"] = [simulated_cuff(ADULT, readings)]
    path = write_config(tmp_path / "gateway.toml", config)

    care = Receiver(upstream=medplum.server.base, default=Answer(forward=True, hang=True))
    try:
        first = GatewayProcess(path)
        await first.start()
        try:
            await first.wait_until(
                lambda events: (
                    sum(e.get("count", 0) for e in events if e.get("event") == "readings_stored")
                    >= 3
                )
            )
            await care.start(port)
            # What the gateway sent was applied by the server, and no answer came back (the
            # worker waits on that POST: readings queued behind it are sent after the restart).
            try:
                await care.wait_for(lambda r: len(r.forwarded) >= 1, timeout=30)
            except TimeoutError:
                pytest.fail("nothing was sent; gateway output:\n" + "\n".join(first.lines[-40:]))
            assert [status for _, status in care.forwarded] == [200] * len(care.forwarded)
        finally:
            first.kill()  # SIGKILL: the answer never reached it
        await first.process.wait()
        created = await medplum.search("Observation")
        applied = {
            e["resource"]["identifier"][0]["value"]
            for q, _ in care.forwarded
            for e in q.json()["entry"]
            if e["resource"]["resourceType"] == "Observation"
        }
        assert created and {o["identifier"][0]["value"] for o in created} == applied

        care.default = Answer(forward=True)  # the platform answers again
        second = GatewayProcess(path)
        await second.start()
        try:
            await care.wait_for(lambda r: sum(len(panel_entries(q)) for q in r.accepted) >= 3)
            code = await second.stop()
        except TimeoutError:
            pytest.fail("timed out; gateway output:\n" + "\n".join(second.lines[-40:]))
        finally:
            second.kill()
    finally:
        await care.stop()
    assert code == 0
    resent = {
        e["resource"]["identifier"][0]["value"] for q in care.accepted for e in q.json()["entry"]
    }
    assert applied <= resent  # the applied readings were really sent again ...
    stored = await medplum.search("Observation")
    assert len(stored) == 6  # three panels and three pulse rates, each once,
    assert len({o["identifier"][0]["value"] for o in stored}) == 6
    assert {o["id"] for o in created} <= {o["id"] for o in stored}  # ... the applied ones kept
