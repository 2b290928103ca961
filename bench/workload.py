"""The benchmark household: subjects, devices, characteristic bytes, and gateway configs.

Six adults, one blood-pressure cuff each (the profile every part of the gateway handles today,
and the one with the richest FHIR mapping: a panel Observation plus a pulse Observation).
Readings are real Blood Pressure Measurement (0x2A35) values made with ``devices.gatt.encode``;
each has its own device timestamp, so every reading gets its own reading id and none is
recognised as a resend.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from devices.gatt import encode
from devices.source import DeviceTarget
from gateway.models import Measurement, Quantity

BLOOD_PRESSURE_MEASUREMENT = "00002a35-0000-1000-8000-00805f9b34fb"
MMHG = "mm[Hg]"
ALERT_SYSTOLIC = 180.0  # the alert rule's limit; ``reading_bytes(..., alert=True)`` is above it
BASE_TIME = datetime(2026, 1, 1, 6, 0, 0)
IDENTIFIER_SYSTEM = "http://electronichealth.se/identifier/personnummer"


@dataclass(frozen=True, slots=True)
class Person:
    subject_id: str
    company_id: str
    birth_date: str
    address: str


PEOPLE = tuple(
    Person(
        subject_id=f"19{50 + i:02d}0{i + 1}01{1234 + i:04d}",
        company_id=f"55914648{30 + i:02d}",
        birth_date=f"19{50 + i:02d}-0{i + 1}-01",
        address=f"C4:7C:8D:6A:10:{i + 1:02X}",
    )
    for i in range(6)
)


def targets() -> list[DeviceTarget]:
    """The device targets as ``gateway.app.device_targets`` builds them for ``PEOPLE``."""
    return [
        DeviceTarget(ref=f"device-{index}", address=person.address, profile="blood_pressure")
        for index, person in enumerate(PEOPLE, start=1)
    ]


def measurement(index: int, *, alert: bool = False, epoch: int = 0) -> Measurement:
    """Reading ``index``: a distinct device timestamp, plausible values, systolic > 180 if alert.

    ``epoch`` shifts the timestamps back by whole years, so that separate phases of one run
    (warm-up, measurement) never produce the same reading id twice.
    """
    systolic = 185.0 + index % 10 if alert else 112.0 + index % 40
    return Measurement(
        kind="blood_pressure",
        values={
            "systolic": Quantity(value=systolic, unit=MMHG),
            "diastolic": Quantity(value=70.0 + index % 15, unit=MMHG),
            "mean_arterial_pressure": Quantity(value=90.0 + index % 12, unit=MMHG),
            "pulse_rate": Quantity(value=58.0 + index % 30, unit="/min"),
        },
        # Earlier years, not later: the gateway replaces a device time in the future.
        measured_at=BASE_TIME.replace(year=BASE_TIME.year - epoch) + timedelta(seconds=index),
    )


def reading_bytes(index: int, *, alert: bool = False, epoch: int = 0) -> bytes:
    """The characteristic value a cuff indicates for reading ``index`` (what bleak hands us)."""
    return encode(BLOOD_PRESSURE_MEASUREMENT, measurement(index, alert=alert, epoch=epoch))


def payloads(count: int, *, epoch: int = 0, alert_every: int = 0) -> list[tuple[int, bytes]]:
    """``count`` readings round-robin over the devices: (device index, characteristic bytes).

    With ``alert_every = k`` every k-th reading is above the alert limit.
    """
    return [
        (
            index % len(PEOPLE),
            reading_bytes(index, epoch=epoch, alert=alert_every > 0 and index % alert_every == 0),
        )
        for index in range(count)
    ]


def webhook_secret_file(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "alerts.secret"
    path.write_text("whsec_" + base64.b64encode(os.urandom(32)).decode())
    path.chmod(0o600)
    return path


# ``python -m bench --window-rules``: the gateways also judge config/example.toml's window rules
# (their cost with a year of history is bench/alert_rules.py's; this shows the pipeline with them).
WITH_WINDOW_RULES = False


def window_rules() -> list[dict[str, Any]]:
    from bench.alert_rules import WINDOW_RULES

    return [{"severity": "warning", **rule} for rule in WINDOW_RULES]


def gateway_config(
    data_dir: Path,
    receiver_url: str,
    secret_file: Path,
    *,
    batch_max_items: int = 100,
    linger_s: float = 0.05,
    alert_cooldown_s: float = 3600.0,
    simulated: dict[str, Any] | None = None,
    analytics: dict[str, Any] | None = None,
    log_level: str = "warning",
) -> dict[str, Any]:
    """A config for ``PEOPLE`` with a FHIR care platform and a signed alert webhook.

    ``simulated``: the ``[devices.simulation]`` table for simulated cuffs (None: devices are
    real, which the in-process benchmarks replace by an injector). ``analytics``: extra keys for
    an analytics destination, added when the gateway supports that kind.
    """
    devices: list[dict[str, Any]] = []
    for person in PEOPLE:
        device: dict[str, Any] = {
            "address": person.address,
            "profile": "blood_pressure",
            "subject": person.subject_id,
        }
        if simulated is not None:
            device["simulated"] = True
            device["simulation"] = dict(simulated)
        devices.append(device)
    destinations: list[dict[str, Any]] = [
        {
            "name": "care-platform",
            "kind": "fhir",
            "purpose": "care",
            "url": receiver_url + "/fhir",
            "batch_max_items": batch_max_items,
            "linger_s": linger_s,
            "retry_initial_s": 0.05,
            "retry_max_s": 1.0,
        },
        {
            "name": "nurse-alerts",
            "kind": "webhook",
            "purpose": "alerting",
            "url": receiver_url + "/hooks/alerts",
            "secret_file": str(secret_file),
            "retry_initial_s": 0.05,
            "retry_max_s": 1.0,
        },
    ]
    if analytics is not None:
        destinations.append(
            {
                "name": "product-analytics",
                "kind": "analytics",
                "purpose": "analytics",
                "url": receiver_url + "/analytics",
                **analytics,
            }
        )
    return {
        "gateway": {
            "data_dir": str(data_dir),
            "log_format": "json",
            "log_level": log_level,
            "shutdown_grace_s": 5.0,
            "api": {"listen": "127.0.0.1:0"},
        },
        "subjects": [
            {
                "id": person.subject_id,
                "company_id": person.company_id,
                "birth_date": person.birth_date,
                "consent": {"care": True, "alerting": True, "analytics": True},
            }
            for person in PEOPLE
        ],
        "devices": devices,
        "destinations": destinations,
        "alert_rules": [
            {
                "kind": "blood_pressure",
                "value": "systolic",
                "above": ALERT_SYSTOLIC,
                "unit": MMHG,
                "severity": "critical",
                "cooldown_s": alert_cooldown_s,
            },
            *(window_rules() if WITH_WINDOW_RULES else []),
        ],
    }
