"""A full outbox says so loudly and keeps taking care and alert data; nothing goes silently."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.models import Measurement, Quantity
from gateway.settings import parse_settings
from tests.configs import ADULT, free_port, webhook_secret
from tests.gateway_harness import (
    ActivityWatcher,
    closed_port_url,
    inject,
    queued,
    running_gateway,
)

ADDRESS = "C4:7C:8D:6A:00:01"


def readings(start: int, count: int, systolic: int = 130) -> list[Measurement]:
    return [
        Measurement(
            kind="blood_pressure",
            measured_at=datetime(2026, 11, 1) + timedelta(minutes=start + i),
            values={
                "systolic": Quantity(value=systolic, unit="mm[Hg]"),
                "diastolic": Quantity(value=80, unit="mm[Hg]"),
            },
        )
        for i in range(count)
    ]


async def test_full_outbox_refuses_only_lower_priority_items_and_reports_it(tmp_path):
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    never = {"retry_initial_s": 3600, "retry_max_s": 3600}
    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "max_queued_items": 100,
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [
                {
                    "id": ADULT,
                    "birth_date": "1970-01-01",
                    "consent": {"care": True, "alerting": True, "analytics": True},
                }
            ],
            "devices": [
                {
                    "address": ADDRESS,
                    "profile": "blood_pressure",
                    "subject": ADULT,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [
                {
                    "name": "care",
                    "kind": "fhir",
                    "purpose": "care",
                    "url": closed_port_url("/fhir"),
                    **never,
                },
                {
                    "name": "product",
                    "kind": "analytics",
                    "purpose": "analytics",
                    "url": closed_port_url("/e"),
                    "fields": ["kind", "values"],
                    "pseudonym_key_file": str(tmp_path / "a.key"),
                    **never,
                },
                {
                    "name": "nurse",
                    "kind": "webhook",
                    "purpose": "alerting",
                    "url": closed_port_url("/h"),
                    "secret_file": str(tmp_path / "alerts.secret"),
                    **never,
                },
            ],
            "alert_rules": [
                {
                    "kind": "blood_pressure",
                    "value": "systolic",
                    "above": 180,
                    "severity": "critical",
                }
            ],
        }
    )
    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await inject(gateway, ADDRESS, readings(0, 60))  # 120 queued: over the limit
        assert gateway.pipeline.stats.refused_full == {}
        await inject(gateway, ADDRESS, readings(100, 10, systolic=190))
        care = await queued(gateway, "care")
        product = await queued(gateway, "product")
        nurse = await queued(gateway, "nurse")
        status = await gateway.status()
    assert len(care) == 70  # care data still queued when full
    assert len(nurse) == 1  # the alert too
    assert len(product) == 60  # analytics refused once full ...
    assert gateway.pipeline.stats.refused_full == {"product": 10}  # ... and counted
    assert watcher.counts["outbox_full"] == 10
    assert status["pipeline"]["refused_full"] == {"product": 10}
