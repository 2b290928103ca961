"""The operator's command line, as subprocesses: usage errors, closed pipes, what the audit
log says, finding the config, and re-queueing every dead letter at once."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp

from tests.configs import ADULT, write_config
from tests.hub_harness import cuff, hub_config, running_hub
from tests.receivers import Answer
from tests.test_cli_ops import READINGS, cli, operator_config


async def cli_to_closed_pipe(*args: str, env: dict[str, str] | None = None):
    """Run the CLI with stdout a pipe whose reader is already gone (as `| head` leaves it)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    finally:
        os.close(write_end)
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, err.decode()


async def test_usage_errors_say_usage_not_config_error():
    for args, expected in (
        (
            ("consent", ADULT, "analytics=perhaps"),
            "health-gateway: usage: consent: write 'analytics=perhaps' as purpose=yes or"
            " purpose=no\n",
        ),
        (
            ("dead-letters", "requeue"),
            "health-gateway: usage: dead-letters requeue: name at least one id, or --all\n",
        ),
        (
            ("dead-letters", "requeue", "7", "--all"),
            "health-gateway: usage: dead-letters requeue: name ids or --all, not both\n",
        ),
        (
            ("dead-letters", "requeue", "seven"),
            "health-gateway: usage: dead-letters requeue: ids are numbers (see the ID column)\n",
        ),
        (
            ("dead-letters", "--all"),
            "health-gateway: usage: dead-letters: to re-queue, write dead-letters requeue"
            " ID... or --all\n",
        ),
    ):
        result = await cli(*args, "--config", "/nonexistent/config.toml")
        assert (result.code, result.err) == (2, expected), args
        assert "config error" not in result.err


async def test_a_closed_pipe_ends_quietly_without_a_traceback(tmp_path):
    config = hub_config(tmp_path, "http://127.0.0.1:9/fhir", "http://127.0.0.1:9/hooks")
    path = str(write_config(tmp_path / "gateway.toml", config))
    for args in (("check-config", path), ("--help",), ("audit", "--help")):
        code, err = await cli_to_closed_pipe(*args)
        assert "Traceback" not in err and "BrokenPipeError" not in err, (args, err)
        assert err == "", (args, err)
        assert code in (0, 141), (args, code)
    code, _err = await cli_to_closed_pipe("check-config", path)
    assert code == 141  # as a shell reports a program the reader left (128 + SIGPIPE)


async def test_audit_show_says_which_consent_changed_and_for_whom(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS)]) as hub:
        await hub.waiter.until("delivered", 2, destination="care-platform")
        config = operator_config(tmp_path, hub)
        changed = await cli("consent", ADULT, "analytics=no", "research=yes", "--config", config)
        assert changed.code == 0, changed.err

        shown = await cli("audit", "show", "--subject", ADULT, "--config", config)
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        assert lines[0].startswith("audit chain intact")
        assert lines[1].split() == ["SEQ", "AT", "EVENT", "PERSON", "WHAT"]
        consent_rows = [line for line in lines if " consent.changed " in line]
        assert any(
            row.rstrip().endswith(
                f"{ADULT}  consent: analytics withdrawn, research granted by the operator"
            )
            for row in consent_rows
        ), consent_rows
        assert any("from the config file" in row for row in consent_rows)  # the first seeding
        sent = [line for line in lines if " disclosure " in line]
        assert sent and all(f"{ADULT}  sent to " in row for row in sent)
        assert any("sent to care-platform for care (consent), reading " in row for row in sent)
        assert any(
            line.endswith("critical alert raised: blood_pressure systolic above 180 mm[Hg]")
            for line in lines
        )
        assert any(
            line.endswith("critical alert resolved: blood_pressure systolic back within its limit")
            for line in lines
        )
        ref = hub.gateway.rights.subject_ref(ADULT)
        assert ref not in shown.out  # the internal reference is not what the operator typed

        everyone = await cli("audit", "show", "--config", config)
        assert everyone.out.splitlines()[1].split()[:5] == ["SEQ", "AT", "EVENT", "SUBJECT", "REF"]


async def test_audit_verify_finds_the_config_like_the_other_commands(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS[:1])]) as hub:
        await hub.waiter.until("delivered", destination="care-platform")
        config = operator_config(tmp_path, hub)
        env = {**os.environ, "HEALTH_GATEWAY_CONFIG": config}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "audit",
            "verify",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert out.decode().startswith("audit log OK: ")
        with_flag = await cli("audit", "verify", "--config", config)
        assert with_flag.code == 0 and with_flag.out.startswith("audit log OK: ")

    missing = await cli("audit", "verify", "--config", str(tmp_path / "nowhere.toml"))
    assert missing.code == 2 and "file not found" in missing.err


async def test_every_dead_letter_is_requeued_at_once(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS)], care_answer=Answer(422)) as hub:
        await hub.waiter.until("dead_letter", 2, destination="care-platform")
        config = operator_config(tmp_path, hub)
        listed = (await cli("dead-letters", "--config", config, "--json")).json()
        ids = sorted(row["id"] for row in listed["dead_letters"])
        assert len(ids) == 2

        # the API's bulk form, limited to a destination with none: nothing moves
        async with (
            aiohttp.ClientSession(headers=hub.auth()) as http,
            http.post(
                hub.url + "/api/dead-letters/requeue",
                json={"all": True, "destination": "nurse-alerts"},
            ) as response,
        ):
            assert response.status == 200
            assert await response.json() == {"requeued": [], "not_found": []}

        hub.care.default = Answer(200)
        requeued = await cli("dead-letters", "requeue", "--all", "--config", config)
        assert requeued.code == 0, requeued.err
        assert requeued.out.strip() == f"requeued: {ids[0]}, {ids[1]}"
        await hub.waiter.until("delivered", 2, destination="care-platform")
        assert (await cli("dead-letters", "--config", config)).out.strip() == "No dead letters."
        again = await cli("dead-letters", "requeue", "--all", "--config", config)
        assert again.code == 0 and again.out.strip() == "requeued: none"
