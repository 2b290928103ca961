import json
import logging

import structlog

from filters.redact import MASK, Redactor
from gateway.logging import configure_logging

PERSON = "197001011234"
ADDRESS = "C4:7C:8D:6A:12:34"


def test_identifiers_addresses_and_values_are_masked():
    redactor = Redactor([PERSON, "1970-01-01", ADDRESS])
    event = redactor(
        None,
        "info",
        {
            "event": f"reading from {ADDRESS.lower()} for {PERSON}",
            "nested": {"who": f"id={PERSON}", "born": "1970-01-01", "values": {"systolic": 190}},
            "other_mac": "AA-BB-CC-DD-EE-FF",
            "systolic": 190,
            "error": ValueError(f"bad {PERSON}"),
            "count": 3,
        },
    )
    flat = json.dumps(event, default=str)
    assert PERSON not in flat and "1970-01-01" not in flat
    assert ADDRESS.lower() not in flat.lower() and "AA-BB-CC-DD-EE-FF" not in flat
    assert "190" not in flat
    assert event["systolic"] == MASK and event["count"] == 3
    assert event["event"] == f"reading from {MASK} for {MASK}"


def test_stdlib_and_structlog_lines_are_redacted(capsys):
    configure_logging(format="json", level="info", secrets=[PERSON, ADDRESS])
    structlog.get_logger("t").info("delivered", subject=PERSON, device=ADDRESS, values=[1, 2])
    logging.getLogger("bleak.backends").warning("device %s disconnected", ADDRESS)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert [line["event"] for line in lines] == ["delivered", f"device {MASK} disconnected"]
    assert PERSON not in err and ADDRESS not in err


def test_addresses_inside_bluez_object_paths_are_masked():
    redactor = Redactor([])
    event = redactor(None, "warning", {"event": "failed /org/bluez/hci0/dev_AA_BB_CC_DD_EE_0F/x"})
    assert event["event"] == f"failed /org/bluez/hci0/dev_{MASK}/x"
