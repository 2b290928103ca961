"""The gateway runs end to end with the environment the systemd unit gives it.

The unit sets ``PYTHONOPTIMIZE=2`` to save memory (no docstrings kept, no asserts run): code
that read a docstring or relied on an assert would break only on a hub. Here ``health-gateway
run`` gets exactly the unit's ``Environment=`` lines, a simulated cuff measures, and the
reading reaches a loopback care platform and the alert reaches the webhook.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import sys
from pathlib import Path

from tests.configs import ADULT, base_config, webhook_secret, write_config
from tests.receivers import Answer, Receiver, fhir_transaction_response
from tests.test_e2e import simulated_cuff

UNIT = Path(__file__).resolve().parent.parent / "config" / "health-gateway.service"
WITHIN_S = 60.0


def unit_environment() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(UNIT)
    lines = parser["Service"].get("Environment", "")
    return dict(item.split("=", 1) for item in lines.split())


def test_the_unit_runs_the_gateway_without_docstrings() -> None:
    assert unit_environment().get("PYTHONOPTIMIZE") == "2"


async def test_a_reading_and_its_alert_go_out_under_the_units_environment(tmp_path: Path) -> None:
    care = await Receiver(
        responder=lambda request: Answer(200, body=fhir_transaction_response(request.body))
    ).start()
    alerts = await Receiver(Answer(204, body=b"")).start()
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        care.url + "/fhir",
        alerts.url + "/hooks/alerts",
    )
    config["devices"] = [simulated_cuff(ADULT, [{"systolic": 190, "diastolic": 100}])]
    environment = {**os.environ, **unit_environment()}
    gateway = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--config",
        str(write_config(tmp_path / "gateway.toml", config)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=environment,
    )
    try:
        await care.wait_for(lambda receiver: receiver.accepted, WITHIN_S)
        await alerts.wait_for(lambda receiver: receiver.accepted, WITHIN_S)
        assert b"Observation" in care.accepted[0].body
        gateway.terminate()
        async with asyncio.timeout(WITHIN_S):
            assert await gateway.wait() == 0
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        await care.stop()
        await alerts.stop()
