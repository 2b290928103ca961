"""The hub's id in what leaves it (issue: a fleet of hubs): FHIR ``meta.source``, the signed
webhook body, the analytics batch; and never in the anonymous aggregate reports. Through the real
gateway as a subprocess, with loopback receivers and the independent verifiers."""

from __future__ import annotations

from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from standardwebhooks.webhooks import Webhook

from gateway.fleet.identity import HUB_ID_FILE
from tests.configs import ADULT, base_config, webhook_secret, write_config
from tests.receivers import Answer, Receiver
from tests.test_e2e import GatewayProcess, simulated_cuff

HUB = "hub-identity-7"


async def test_every_format_with_a_place_for_it_names_the_hub(tmp_path: Path) -> None:
    care = await Receiver().start()
    alerts = await Receiver(Answer(204, body=b"")).start()
    analytics = await Receiver(Answer(202, body=b"")).start()
    secret = webhook_secret()
    (tmp_path / "alerts.secret").write_text(secret)
    config = base_config(
        tmp_path / "data", tmp_path / "alerts.secret", care.url + "/fhir", alerts.url + "/h"
    )
    config["gateway"]["hub_id"] = HUB
    config["subjects"][0]["consent"]["analytics"] = True
    config["destinations"].append(
        {
            "name": "product-analytics",
            "kind": "analytics",
            "purpose": "analytics",
            "url": analytics.url + "/events",
            "fields": ["kind", "values"],
            "linger_s": 0.01,
        }
    )
    config["devices"] = [
        simulated_cuff(
            ADULT,
            [
                {
                    "systolic": 190,
                    "diastolic": 100,
                    "pulse_rate": 90,
                    "measured_at": "2026-11-20T08:00:00",
                }
            ],
        )
    ]
    gateway = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
    await gateway.start()
    try:
        await alerts.wait_for(lambda r: len(r.accepted) >= 1)
        await care.wait_for(lambda r: len(r.accepted) >= 1)
        await analytics.wait_for(lambda r: len(r.accepted) >= 1)
        assert await gateway.stop() == 0
    finally:
        gateway.kill()
        for receiver in (care, alerts, analytics):
            await receiver.stop()

    bundle = care.accepted[0].json()
    Bundle.model_validate(bundle)  # meta.source is valid FHIR
    sources = {entry["resource"]["meta"]["source"] for entry in bundle["entry"]}
    assert sources == {f"urn:health-gateway:hub:{HUB}"}

    alert = alerts.accepted[0]
    verified = Webhook(secret).verify(alert.body, alert.headers)  # the signature covers the id
    assert verified["hub_id"] == HUB and verified["type"] == "alert.raised"

    batch = analytics.accepted[0].json()
    assert batch["hub_id"] == HUB and batch["events"]


async def test_an_unnamed_hub_makes_its_id_once_and_keeps_it(tmp_path: Path) -> None:
    config = base_config(
        tmp_path / "data", tmp_path / "s", "http://127.0.0.1:9/fhir", "http://127.0.0.1:9/h"
    )
    (tmp_path / "s").write_text(webhook_secret())
    path = write_config(tmp_path / "gateway.toml", config)
    ids = []
    for _run in range(2):
        gateway = GatewayProcess(path)
        await gateway.start()
        try:
            await gateway.wait_for_event(lambda e: e.get("event") == "gateway_started")
            assert await gateway.stop() == 0
        finally:
            gateway.kill()
        ids.append((tmp_path / "data" / HUB_ID_FILE).read_text().strip())
    assert ids[0] == ids[1] and ids[0].startswith("hub-")
