"""Operator commands as an operator runs them: `health-gateway ...` subprocesses against a
running gateway's local API (URL and token from the config)."""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.configs import ADULT, write_config
from tests.hub_harness import Hub, cuff, hub_config, running_hub
from tests.receivers import Answer

READINGS = [
    {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 121, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:05:00"},
]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return orjson.loads(self.out)


async def cli(*args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def operator_config(tmp_path: Path, hub: Hub) -> str:
    """The config an operator has: the running gateway's, with its real port."""
    config = hub_config(tmp_path, hub.care.url + "/fhir", hub.alerts.url + "/hooks/alerts")
    config["gateway"]["api"]["listen"] = hub.url.removeprefix("http://")
    return str(write_config(tmp_path / "operator.toml", config))


async def test_status_devices_consent_export_erase(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS)]) as hub:
        await hub.waiter.until("delivered", 2, destination="care-platform")
        config = operator_config(tmp_path, hub)

        # read-only commands, side by side
        status, as_json, devices, devices_json, listed = await asyncio.gather(
            cli("status", "--config", config),
            cli("status", "--config", config, "--json"),
            cli("devices", "--config", config),
            cli("devices", "--config", config, "--json"),
            cli("consent", ADULT, "--config", config),
        )
        assert status.code == 0, status.err
        assert "running and ready" in status.out
        assert "DESTINATION" in status.out and "care-platform" in status.out
        assert "device-1" in status.out and "Blood pressure monitor" in status.out
        assert as_json.json()["destinations"][0]["delivered"] >= 2
        assert devices.out.splitlines()[0].split()[:3] == ["DEVICE", "NAME", "PROFILE"]
        assert devices_json.json()["devices"][0]["profile"] == "blood_pressure"
        assert listed.code == 0 and "analytics" in listed.out and "config" in listed.out

        changed = await cli("consent", ADULT, "analytics=no", "care=yes", "--config", config)
        assert changed.code == 0, changed.err
        assert "analytics: withdrawn; 0 queued item(s) purged" in changed.out
        assert "care: unchanged (already granted)" in changed.out
        bad = await cli("consent", ADULT, "analytics", "--config", config)
        assert bad.code == 2 and "purpose=yes or purpose=no" in bad.err

        target = tmp_path / "export.fhir.json"
        exported = await cli(
            "export", ADULT, "--format", "fhir", "-o", str(target), "--config", config
        )
        assert exported.code == 0, exported.err
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert orjson.loads(target.read_bytes())["resourceType"] == "Bundle"
        to_stdout = await cli("export", ADULT, "--config", config)
        assert len(to_stdout.json()["readings"]) == 2

        restricted = await cli("restrict", ADULT, "on", "--config", config)
        assert "restricted" in restricted.out
        assert hub.gateway.restrictions.is_restricted(hub.gateway.rights.subject_ref(ADULT))
        assert (await cli("restrict", ADULT, "off", "--config", config)).code == 0

        refused = await cli("erase", ADULT, "--config", config)
        assert refused.code == 2 and "--yes" in refused.err
        erased = await cli("erase", ADULT, "--yes", "--config", config)
        assert erased.code == 0, erased.err
        assert "erased: 2 readings" in erased.out

        unknown = await cli("export", "000000000000", "--config", config)
        assert unknown.code == 1
        assert unknown.err.strip().count("\n") == 0
        assert "404" in unknown.err and "no subject" in unknown.err

        shown = await cli("audit", "show", "--subject", ADULT, "--config", config)
        assert "audit chain intact" in shown.out and "subject.erased" in shown.out


async def test_dead_letters_listed_and_requeued_from_the_command_line(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS[:1])], care_answer=Answer(422)) as hub:
        await hub.waiter.until("dead_letter", destination="care-platform")
        hub.care.default = Answer(200)
        config = operator_config(tmp_path, hub)
        listed = await cli("dead-letters", "--config", config)
        assert listed.code == 0
        header, row = listed.out.splitlines()
        assert header.split()[:3] == ["ID", "DESTINATION", "CATEGORY"]
        dead_id = row.split()[0]
        assert "care-platform" in row and "422" in row
        requeued = await cli("dead-letters", "requeue", dead_id, "--config", config)
        assert requeued.code == 0 and f"requeued: {dead_id}" in requeued.out
        await hub.waiter.until("delivered", destination="care-platform")
        assert (await cli("dead-letters", "--config", config)).out.strip() == "No dead letters."
        missing = await cli("dead-letters", "requeue", "999", "--config", config)
        assert missing.code == 1 and "not found: 999" in missing.out


async def test_a_gateway_that_is_not_running_is_one_clear_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = hub_config(tmp_path, "http://127.0.0.1:9/fhir", "http://127.0.0.1:9/hooks")
    config["gateway"]["api"]["listen"] = f"127.0.0.1:{port}"
    path = str(write_config(tmp_path / "gateway.toml", config))

    never_started = await cli("status", "--config", path)
    assert never_started.code == 1
    assert "no API token" in never_started.err and "is it running?" in never_started.err

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-token").write_text("a-token-of-a-gateway-that-stopped\n")
    stopped = await cli("status", "--config", path)
    assert stopped.code == 1
    assert stopped.err == (
        f"health-gateway: cannot reach the gateway at http://127.0.0.1:{port} (Connection"
        " refused); is it running? (systemctl status health-gateway)\n"
    )


async def test_a_wrong_token_is_one_clear_line(tmp_path):
    async with running_hub(tmp_path) as hub:
        config = hub_config(tmp_path, hub.care.url + "/fhir", hub.alerts.url + "/hooks/alerts")
        config["gateway"]["api"]["listen"] = hub.url.removeprefix("http://")
        wrong = tmp_path / "other-token"
        wrong.write_text("this-is-not-the-token-of-that-gateway\n")
        config["gateway"]["api"]["token_file"] = str(wrong)
        path = str(write_config(tmp_path / "operator.toml", config))
        result = await cli("devices", "--config", path)
        assert result.code == 1
        assert "refused the API token" in result.err
        assert result.err.count("\n") == 1
