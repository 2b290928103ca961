"""The lean durable floor: the gateway's job for one care destination, done the shortest way.

Per reading, in one process and one thread, with no framework of ours: decode a Blood Pressure
Measurement (0x2A35) value with ``struct`` into a slotted object, one HMAC-SHA-256 (the keyed
reference of the person), build the FHIR Observation, ``orjson`` it, seal it (AES-GCM), and
``INSERT`` it, 256 per transaction (WAL, ``synchronous=FULL``, the same disk as the gateway's
benchmarks). Then read the stored rows back 100 at a time, open them, splice them into a FHIR
transaction Bundle, POST it to the same receiver process the pipeline benchmark uses, check
every entry of the transaction-response, and ``DELETE`` the batch (one transaction).

That is the work no durable store-and-forward of this kind can skip; it is what the pipeline's
CPU per reading is compared with (issue "Store once, send many": at most twice this). It leaves
out what the gateway does on top: consent, restriction, minimisation, a second (analytics)
destination, alert rules, the audit log, the activity feed, the hub page and the metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sqlite3
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.harness import ReceiverProcess
from bench.workload import PEOPLE, payloads, webhook_secret_file

INSERT_BATCH = 256
SEND_BATCH = 100
IDENTIFIER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class LeanResult:
    readings: int
    seconds: float
    cpu_s: float
    fhir_requests: int

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds

    @property
    def cpu_us_per_reading(self) -> float:
        return self.cpu_s / self.readings * 1e6


class Pressure:
    """One decoded blood-pressure reading (mmHg), as plain as it gets."""

    __slots__ = ("diastolic", "mean", "measured_at", "pulse", "systolic")

    def __init__(
        self, systolic: float, diastolic: float, mean: float, pulse: float | None, at: str | None
    ) -> None:
        self.systolic = systolic
        self.diastolic = diastolic
        self.mean = mean
        self.pulse = pulse
        self.measured_at = at


_THREE = struct.Struct("<HHH")
_STAMP = struct.Struct("<HBBBBB")
_ONE = struct.Struct("<H")


def _sfloat(raw: int) -> float:
    mantissa = raw & 0x0FFF
    exponent = raw >> 12
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    if exponent >= 0x8:
        exponent -= 0x10
    return mantissa * 10.0**exponent


def decode_pressure(data: bytes) -> Pressure:
    """The fields of a 0x2A35 value the benchmark's cuffs send (mmHg, time stamp, pulse)."""
    flags = data[0]
    systolic, diastolic, mean = _THREE.unpack_from(data, 1)
    offset = 7
    at = None
    if flags & 0x02:
        year, month, day, hour, minute, second = _STAMP.unpack_from(data, offset)
        at = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        offset += 7
    pulse = _sfloat(_ONE.unpack_from(data, offset)[0]) if flags & 0x04 else None
    return Pressure(_sfloat(systolic), _sfloat(diastolic), _sfloat(mean), pulse, at)


def _component(code: str, display: str, value: float) -> dict[str, object]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    }


def observations(reading: Pressure, subject_id: str, reading_id: str) -> list[dict[str, object]]:
    """The panel Observation and the pulse Observation beside it, as the gateway sends them
    (PHD IG shape, trimmed to what a care platform files)."""
    subject = {"identifier": {"system": IDENTIFIER_SYSTEM, "value": subject_id}}
    panel = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{reading_id}"}],
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {
            "coding": [
                {"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"},
                {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
            ]
        },
        "subject": subject,
        "effectiveDateTime": reading.measured_at,
        "component": [
            _component("8480-6", "Systolic blood pressure", reading.systolic),
            _component("8462-4", "Diastolic blood pressure", reading.diastolic),
            _component("8478-0", "Mean blood pressure", reading.mean),
        ],
    }
    if reading.pulse is None:
        return [panel]
    pulse = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{reading_id}-p"}],
        "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        "subject": subject,
        "effectiveDateTime": reading.measured_at,
        "valueQuantity": {"value": reading.pulse, "unit": "/min", "system": UCUM, "code": "/min"},
    }
    return [panel, pulse]


class LeanStore:
    """One table, one connection, the event loop's own thread."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, reading_id TEXT NOT NULL,"
            " payload BLOB NOT NULL)"
        )
        self._aead = AESGCM(key)

    def store(self, rows: list[tuple[str, bytes]]) -> None:
        sealed = []
        for reading_id, body in rows:
            nonce = os.urandom(12)
            sealed.append(
                (reading_id, nonce + self._aead.encrypt(nonce, body, reading_id.encode()))
            )
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("INSERT INTO queue (reading_id, payload) VALUES (?, ?)", sealed)
        self._db.execute("COMMIT")

    def oldest(self, limit: int) -> list[tuple[int, str, bytes]]:
        rows = self._db.execute(
            "SELECT id, reading_id, payload FROM queue ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [
            (id_, reading_id, self._aead.decrypt(blob[:12], blob[12:], reading_id.encode()))
            for id_, reading_id, blob in rows
        ]

    def delete(self, ids: list[int]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(f"DELETE FROM queue WHERE id IN ({','.join('?' * len(ids))})", ids)
        self._db.execute("COMMIT")

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def close(self) -> None:
        self._db.close()


_BUNDLE_HEAD = b'{"resourceType":"Bundle","type":"transaction","entry":['
_REQUEST = b',"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier='


async def _send(
    session: aiohttp.ClientSession, url: str, store: LeanStore, limit: int
) -> tuple[int, int]:
    """POST the oldest ``limit`` stored readings as one Bundle; returns (sent, requests)."""
    batch = store.oldest(limit)
    if not batch:
        return 0, 0
    entries = [
        b'{"fullUrl":"urn:uuid:'
        + reading_id.encode()
        + b"-"
        + str(index).encode()
        + b'","resource":'
        + orjson.dumps(resource)
        + _REQUEST
        + resource["identifier"][0]["value"].encode()
        + b'"}}'
        for _id, reading_id, body in batch
        for index, resource in enumerate(orjson.loads(body))
    ]
    bundle = _BUNDLE_HEAD + b",".join(entries) + b"]}"
    headers = {"Content-Type": "application/fhir+json"}
    async with session.post(url, data=bundle, headers=headers) as response:
        answer = orjson.loads(await response.read())
        if response.status >= 300:
            raise RuntimeError(f"the receiver answered {response.status}")
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    if len(statuses) != len(entries) or not all(s.startswith("2") for s in statuses):
        raise RuntimeError("the transaction-response refused an entry")
    store.delete([id_ for id_, _reading_id, _body in batch])
    return len(batch), 1


async def measure_lean(workdir: Path, readings: int, warmup: int = 600) -> LeanResult:
    """Decode -> seal -> store -> read back -> POST -> DELETE for ``readings`` readings."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret_file = webhook_secret_file(workdir)
    receiver = await ReceiverProcess(secret_file).start()
    store = LeanStore(workdir / "lean.db", os.urandom(32))
    reference_key = os.urandom(32)
    people = [person.subject_id for person in PEOPLE]
    url = receiver.url + "/fhir"
    try:
        async with aiohttp.ClientSession() as session:

            async def run(items: list[tuple[int, bytes]]) -> tuple[float, float, int]:
                requests = 0
                cpu, wall = time.process_time(), time.perf_counter()
                for start in range(0, len(items), INSERT_BATCH):
                    rows = []
                    for device, data in items[start : start + INSERT_BATCH]:
                        reading = decode_pressure(data)
                        subject = people[device]
                        reading_id = hmac.digest(
                            reference_key, f"{subject}\x1f{reading.measured_at}".encode(), "sha256"
                        ).hex()[:32]
                        rows.append(
                            (reading_id, orjson.dumps(observations(reading, subject, reading_id)))
                        )
                    store.store(rows)
                    while store.count() >= SEND_BATCH:
                        requests += (await _send(session, url, store, SEND_BATCH))[1]
                while (sent := await _send(session, url, store, SEND_BATCH))[0]:
                    requests += sent[1]
                return time.process_time() - cpu, time.perf_counter() - wall, requests

            await run(payloads(warmup, epoch=1))
            cpu_s, seconds, requests = await run(payloads(readings, epoch=2))
        return LeanResult(readings=readings, seconds=seconds, cpu_s=cpu_s, fhir_requests=requests)
    finally:
        store.close()
        await receiver.stop()


def main() -> None:  # pragma: no cover - a convenience for running this stage alone
    import tempfile

    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as directory:
        result = asyncio.run(measure_lean(Path(directory), 3000))
    print(
        f"lean floor: {result.cpu_us_per_reading:.1f} us CPU per reading,"
        f" {result.readings_per_s:,.0f} readings/s ({datetime.now(UTC).isoformat()})"
    )


if __name__ == "__main__":
    main()
