"""kill -9 in the middle of a window: after each restart no alert repeats and no window is lost.

The gateway runs as a process with a simulated cuff through the real BLE stack; its script grows
from one run to the next (the cuff remembers what it sent, as a real one keeps its records), and
one real alert receiver on loopback stays up across all three runs. Webhooks are verified with
the independent ``standardwebhooks`` library and counted by their ``webhook-id``.
"""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests.configs import ADULT, base_config, free_port, webhook_secret, write_config
from tests.receivers import Answer, Receiver
from tests.test_e2e import GatewayProcess, simulated_cuff

COUNT = {
    "kind": "blood_pressure",
    "value": "systolic",
    "above": 160,
    "count": 3,
    "within": "7d",
    "unit": "mm[Hg]",
}
LIMIT = {"kind": "blood_pressure", "value": "systolic", "above": 180, "severity": "critical"}


def row(systolic: int, day: int) -> dict:
    return {
        "systolic": systolic,
        "diastolic": 85,
        "pulse_rate": 70,
        "measured_at": f"2026-11-{day + 2:02d}T08:00:00",
    }


def stored(events: list[dict]) -> int:
    return sum(e.get("count", 0) for e in events if e.get("event") == "readings_stored")


def distinct(receiver: Receiver) -> int:
    return len({request.headers["webhook-id"] for request in receiver.accepted})


@pytest.mark.slow
async def test_kill_9_mid_window_neither_repeats_an_alert_nor_forgets_the_window(tmp_path):
    secret = webhook_secret()
    (tmp_path / "alerts.secret").write_text(secret)
    alerts = await Receiver(Answer(204, body=b"")).start()
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        f"http://127.0.0.1:{free_port()}/fhir",  # the care platform is down throughout
        alerts.url + "/hooks",
    )
    config["gateway"]["log_level"] = "debug"
    config["alert_rules"] = [COUNT, LIMIT]
    script = [row(170, 0), row(190, 1)]
    runs = [
        (script, 2, 1),  # a limit alert (190); two of the three highs the count rule needs
        ([*script, row(195, 2), row(170, 3)], 2, 3),  # third high: count; 195 no repeat; 170 ends
        ([*script, row(195, 2), row(170, 3), row(120, 11)], 1, 4),  # the highs leave the window
    ]
    try:
        for number, (readings, new, webhooks) in enumerate(runs, start=1):
            config["devices"] = [simulated_cuff(ADULT, readings)]
            gateway = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
            await gateway.start()
            try:
                await gateway.wait_until(lambda events, new=new: stored(events) >= new)
                await alerts.wait_for(lambda r, webhooks=webhooks: distinct(r) >= webhooks)
                if number < len(runs):
                    gateway.kill()  # SIGKILL: no shutdown code runs
                    await gateway.process.wait()
                else:
                    assert await gateway.stop() == 0
            except TimeoutError:
                pytest.fail(f"run {number} timed out:\n" + "\n".join(gateway.lines[-40:]))
            finally:
                gateway.kill()  # whatever happened, no gateway outlives its run
    finally:
        await alerts.stop()
    verifier = Webhook(secret)
    seen: dict[str, dict] = {}
    for request in alerts.accepted:
        seen.setdefault(
            request.headers["webhook-id"], verifier.verify(request.body, request.headers)
        )
    told = sorted((b["data"]["rule"]["id"], b["type"]) for b in seen.values())
    assert told == [
        ("g0", "alert.raised"),
        ("g0", "alert.resolved"),
        ("g1", "alert.raised"),
        ("g1", "alert.resolved"),
    ]
    count_raised = next(
        b for b in seen.values() if b["type"] == "alert.raised" and b["data"]["rule"]["id"] == "g0"
    )
    assert [r["measured_at"][:10] for r in count_raised["data"]["readings"]] == [
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
    ]
