"""``python -m bench.fleet [--json] [--readings N]``: what one hub sends its fleet broker, measured.

Runs ``health-gateway run`` with a simulated cuff, the MQTT fleet uplink and ``[fleet]`` against a
local Mosquitto (TLS, client certificates, the per-hub ACL, as in the tests), and counts, on the
platform's side, the messages and bytes that arrive per topic. From those it sizes a fleet:
messages per second and bytes per day at the broker for a number of hubs, for a stated number of
readings per hub and day and the status interval. Needs Debian's mosquitto
(``./install.sh --test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from gateway.exporters.mqtt.session import MqttSession, TlsFiles
from tests.configs import ADULT, write_config
from tests.mqtt_broker import MosquittoBroker
from tests.test_e2e import GatewayProcess, simulated_cuff

HUB = "hub-bench-0001"
# A home in remote monitoring: blood pressure morning and evening, a daily weight, four glucose
# readings (the care plans of the services we serve); the status every 5 minutes plus changes.
READINGS_PER_HUB_DAY = 7
STATUS_INTERVAL_S = 300
HUBS = 10_000


@dataclass
class Measured:
    readings: int
    reading_messages: int
    reading_bytes_mean: float
    status_messages: int
    status_bytes_mean: float
    hubs: int
    readings_per_hub_day: int
    status_interval_s: int
    messages_per_s_fleet: float
    megabytes_per_day_fleet: float


class Counter:
    def __init__(self) -> None:
        self.sizes: dict[str, list[int]] = {"readings": [], "status": []}
        self.changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes, _retained: bool) -> None:
        kind = "status" if topic.endswith("/status") else "readings"
        if kind == "status" and b'"ready":true' not in payload:
            return  # the short "starting" and "offline" documents; the periodic one is this
        # What crosses the broker per message: topic and payload (headers add a few bytes more).
        self.sizes[kind].append(len(topic) + len(payload))
        self.changed.set()


async def measure(readings: int) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as folder:
        root = Path(folder)
        async with MosquittoBroker(root / "broker") as broker:
            files = broker.client("platform")
            counter = Counter()
            platform = MqttSession(
                broker.url,
                client_id="platform",
                tls=TlsFiles(files.ca_file, files.cert_file, files.key_file),
                on_message=counter,
            )
            await platform.connect()
            await platform.subscribe(f"hubs/{HUB}/readings/#")
            await platform.subscribe(f"hubs/{HUB}/status")
            hub = broker.client(HUB)
            tls = {
                "ca_file": str(hub.ca_file),
                "client_cert_file": str(hub.cert_file),
                "client_key_file": str(hub.key_file),
            }
            config = write_config(
                root / "gateway.toml",
                {
                    "gateway": {
                        "data_dir": str(root / "data"),
                        "hub_id": HUB,
                        "log_format": "json",
                        "log_level": "warning",
                        "api": {"enabled": False},
                    },
                    "fleet": {"url": broker.url, "status_interval_s": STATUS_INTERVAL_S, **tls},
                    "subjects": [
                        {"id": ADULT, "birth_date": "1970-01-01", "consent": {"analytics": True}}
                    ],
                    "devices": [
                        simulated_cuff(
                            ADULT,
                            [
                                {"systolic": 118 + i % 30, "diastolic": 76, "pulse_rate": 64}
                                for i in range(readings)
                            ],
                        )
                    ],
                    "destinations": [
                        {
                            "name": "fleet-uplink",
                            "kind": "mqtt",
                            "purpose": "analytics",
                            "url": broker.url,
                            "fields": ["kind", "values", "measured_day", "subject"],
                            "pseudonym_key_file": str(root / "data" / "keys" / "uplink.key"),
                            **tls,
                        }
                    ],
                },
            )
            gateway = GatewayProcess(config)
            await gateway.start()
            try:
                async with asyncio.timeout(120):
                    while len(counter.sizes["readings"]) < readings or not counter.sizes["status"]:
                        counter.changed.clear()
                        await counter.changed.wait()
                await gateway.stop()
            finally:
                gateway.kill()
                await platform.close()
    reading_sizes, status_sizes = counter.sizes["readings"], counter.sizes["status"]
    reading_mean = sum(reading_sizes) / len(reading_sizes)
    status_mean = sum(status_sizes) / max(1, len(status_sizes))
    per_hub_day_messages = READINGS_PER_HUB_DAY + 86_400 / STATUS_INTERVAL_S
    per_hub_day_bytes = (
        READINGS_PER_HUB_DAY * reading_mean + 86_400 / STATUS_INTERVAL_S * status_mean
    )
    return Measured(
        readings=readings,
        reading_messages=len(reading_sizes),
        reading_bytes_mean=round(reading_mean, 1),
        status_messages=len(status_sizes),
        status_bytes_mean=round(status_mean, 1),
        hubs=HUBS,
        readings_per_hub_day=READINGS_PER_HUB_DAY,
        status_interval_s=STATUS_INTERVAL_S,
        messages_per_s_fleet=round(HUBS * per_hub_day_messages / 86_400, 2),
        megabytes_per_day_fleet=round(HUBS * per_hub_day_bytes / 1e6, 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--readings", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(measure(args.readings))
    if args.json:
        sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    else:
        for name, value in asdict(result).items():
            print(f"{name:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
