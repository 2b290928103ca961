"""kill -9 while the care platform is down, restart with the device silent: nothing is lost."""

from __future__ import annotations

import pytest

from tests.configs import ADULT, base_config, free_port, webhook_secret, write_config
from tests.receivers import Receiver
from tests.test_e2e import GatewayProcess, simulated_cuff


def panels(receiver: Receiver) -> list[dict]:
    return [
        e["resource"]
        for r in receiver.accepted
        for e in r.json()["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "150020"
    ]


async def test_queued_readings_survive_kill_9(tmp_path):
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

    care = await Receiver().start(port)
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
