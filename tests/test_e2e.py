"""End to end: `health-gateway run` as a subprocess, simulated cuffs on the real BLE stack,
real loopback receivers for the care platform and the nurse-alert webhook; the care platform is
our stand-in and, in a second run, the real FHIR server (Medplum) behind a forwarding proxy."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from standardwebhooks.webhooks import Webhook

from tests.configs import ADULT, CHILD, REFUSER, base_config, webhook_secret, write_config
from tests.receivers import Answer, Receiver

ADDRESSES = {ADULT: "C4:7C:8D:6A:00:01", REFUSER: "C4:7C:8D:6A:00:02", CHILD: "C4:7C:8D:6A:00:03"}
BIRTH_DATES = {ADULT: "1970-01-01", REFUSER: "1980-02-02", CHILD: "2015-01-01"}


class GatewayProcess:
    """The gateway as a subprocess whose JSON log lines are collected as they arrive."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.lines: list[str] = []
        self.events: list[dict] = []
        self._changed = asyncio.Condition()
        self.ended = False
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.lines.append(line)
                try:
                    self.events.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    pass
                self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    async def wait_for_event(self, predicate, timeout: float = 30.0) -> dict:
        async def find() -> dict:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self.ended or any(predicate(e) for e in self.events)
                )
                for event in self.events:
                    if predicate(event):
                        return event
                raise AssertionError("the gateway exited:\n" + "\n".join(self.lines[-40:]))

        return await asyncio.wait_for(find(), timeout)

    async def wait_until(self, predicate, timeout: float = 30.0) -> None:
        """Wait until ``predicate(all events so far)`` holds."""

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.ended or predicate(self.events))
                if not predicate(self.events):
                    raise AssertionError("the gateway exited:\n" + "\n".join(self.lines[-40:]))

        await asyncio.wait_for(until(), timeout)

    async def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


def simulated_cuff(subject: str, readings: list[dict]) -> dict:
    return {
        "address": ADDRESSES[subject],
        "profile": "blood_pressure",
        "subject": subject,
        "simulated": True,
        "simulation": {"interval_s": 0.05, "readings": readings},
    }


@pytest.fixture
async def receivers(care_platform):
    care = await care_platform.receiver().start()
    alerts = await Receiver(Answer(204, body=b"")).start()
    yield care, alerts
    await care.stop()
    await alerts.stop()


async def test_readings_flow_filtered_delivered_and_alerted(tmp_path, receivers, care_platform):
    care, alerts = receivers
    secret = webhook_secret()
    (tmp_path / "alerts.secret").write_text(secret)
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        care.url + "/fhir",
        alerts.url + "/hooks/alerts",
    )
    config["gateway"]["log_level"] = "info"
    config["subjects"] += [
        {
            "id": REFUSER,
            "birth_date": BIRTH_DATES[REFUSER],
            "consent": {"care": False, "alerting": True},
        },
        {
            "id": CHILD,
            "birth_date": BIRTH_DATES[CHILD],
            "consent": {"care": True, "alerting": True},
        },
    ]
    config["devices"] = [
        simulated_cuff(
            ADULT,
            [
                {
                    "systolic": 190,
                    "diastolic": 100,
                    "pulse_rate": 90,
                    "measured_at": "2026-11-20T08:00:00",
                },
                {
                    "systolic": 121,
                    "diastolic": 79,
                    "pulse_rate": 66,
                    "measured_at": "2026-11-20T08:05:00",
                },
            ],
        ),
        simulated_cuff(
            REFUSER,
            [
                {
                    "systolic": 185,
                    "diastolic": 95,
                    "pulse_rate": 70,
                    "measured_at": "2026-11-20T09:00:00",
                },
            ],
        ),
        simulated_cuff(
            CHILD,
            [
                {
                    "systolic": 200,
                    "diastolic": 120,
                    "pulse_rate": 99,
                    "measured_at": "2026-11-20T10:00:00",
                },
            ],
        ),
    ]
    gateway = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
    await gateway.start()
    try:
        await gateway.wait_for_event(
            lambda e: e.get("event") == "reading_dropped" and e.get("reason") == "minor"
        )
        await alerts.wait_for(lambda r: len(r.accepted) >= 2)

        def adult_panels(receiver):
            return [
                entry
                for request in receiver.accepted
                for entry in request.json()["entry"]
                if entry["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "150020"
            ]

        await care.wait_for(lambda r: len(adult_panels(r)) >= 2)
        code = await gateway.stop()
    except TimeoutError:
        pytest.fail(
            "timed out; gateway output:\n"
            + "\n".join(gateway.lines[-60:])
            + f"\ncare requests: {len(care.requests)}, alerts: {len(alerts.requests)}"
        )
    finally:
        gateway.kill()
    output = "\n".join(gateway.lines)
    assert code == 0, output

    # FHIR: valid transaction bundles, only the consenting adult, each reading once.
    observations = []
    for request in care.accepted:
        assert request.headers["Content-Type"].startswith("application/fhir+json")
        Bundle.model_validate(request.json())
        observations += [
            e["resource"]
            for e in request.json()["entry"]
            if e["resource"]["resourceType"] == "Observation"
        ]
    subjects = {o["subject"]["identifier"]["value"] for o in observations}
    assert subjects == {ADULT}
    identifiers = [o["identifier"][0]["value"] for o in observations]
    assert len(identifiers) == len(set(identifiers)) == 4  # 2 panels + 2 pulse observations
    panels = [o for o in observations if o["code"]["coding"][0]["code"] == "150020"]
    systolic = sorted(
        c["valueQuantity"]["value"]
        for o in panels
        for c in o["component"]
        if c["code"]["coding"][0]["code"] == "150021"
    )
    assert systolic == [121, 190]
    if care_platform.medplum is not None:  # the real server stored each of them once, valid
        stored = await care_platform.medplum.search("Observation")
        assert sorted(o["identifier"][0]["value"] for o in stored) == sorted(identifiers)
        assert {o["subject"]["identifier"]["value"] for o in stored} == {ADULT}
        assert len(await care_platform.medplum.search("Device")) == 1

    # Alerts: signed, exactly one per person over the limit, none for the child.
    verifier = Webhook(secret)
    bodies = [verifier.verify(r.body, r.headers) for r in alerts.accepted]
    over = sorted(
        (b["data"]["subject"]["identifier"]["value"], b["data"]["value"]["value"])
        for b in bodies
        if b["type"] == "alert.raised"
    )
    assert over == sorted([(ADULT, 190), (REFUSER, 185)])
    resolved = [b for b in bodies if b["type"] == "alert.resolved"]
    assert [b["data"]["subject"]["identifier"]["value"] for b in resolved] == [ADULT]
    [adult_alert] = [
        b
        for b in bodies
        if b["type"] == "alert.raised" and b["data"]["subject"]["identifier"]["value"] == ADULT
    ]
    assert adult_alert["data"]["exceeded_by"] == 10
    assert adult_alert["data"]["threshold"]["limit"] == 180

    # Logs: JSON lines with no identifier, birth date, device address or reading value.
    assert gateway.events, output
    for secret_text in [
        ADULT,
        REFUSER,
        CHILD,
        "5591464838",
        *BIRTH_DATES.values(),
        *ADDRESSES.values(),
        *(a.replace(":", "_") for a in ADDRESSES.values()),
    ]:
        assert secret_text not in output, f"{secret_text} leaked into the logs"
    assert any(e.get("event") == "gateway_stopped" for e in gateway.events)
