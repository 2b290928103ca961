"""Every real vector in tests/vectors/ decodes to what its public source says it holds.

The corpus is data, one JSON file per source (see tests/vectors/README.md); this test is the only
code that reads it. A vector with a ``profile`` is advertisement service data for
``devices.broadcast.decode``; any other is a GATT characteristic value for ``devices.gatt.decode``
with the vector's ``model`` (None = plain specification behaviour).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from devices import broadcast, gatt
from devices.gatt import DecodeError
from devices.models import Measurement

VECTORS_DIR = Path(__file__).parent / "vectors"
DEFAULT_TOLERANCE = 1e-6


def _load() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in sorted(VECTORS_DIR.glob("*.json")):
        document = orjson.loads(path.read_bytes())
        for vector in document["vectors"]:
            cases.append((f"{path.stem}: {vector['name']}", document["source"], vector))
    return cases


CASES = _load()


def _decode(vector: dict[str, Any]) -> Measurement:
    data = bytes.fromhex(vector["hex"])
    if "profile" in vector:
        return broadcast.decode(vector["profile"], vector["service_uuid"], data)
    return gatt.decode(vector["characteristic"], data, model=vector.get("model"))


def _assert_matches(measurement: Measurement, expected: dict[str, Any]) -> None:
    if "kind" in expected:
        assert measurement.kind == expected["kind"]
    tolerance = expected.get("tolerance", DEFAULT_TOLERANCE)
    for name, (number, unit) in expected.get("values", {}).items():
        assert name in measurement.values, f"{name} missing from {measurement.values}"
        got = measurement.values[name]
        assert got.unit == unit, f"{name}: unit {got.unit}, expected {unit}"
        close = math.isclose(got.value, number, abs_tol=tolerance)
        assert close, f"{name}: {got.value} != {number}"
    for name in expected.get("absent", []):
        assert name not in measurement.values, f"{name} should be absent"
    if "measured_at" in expected:
        stamp = expected["measured_at"]
        assert measurement.measured_at == (None if stamp is None else datetime.fromisoformat(stamp))
    if "user_index" in expected:
        assert measurement.user_index == expected["user_index"]
    for key, value in expected.get("status", {}).items():
        assert measurement.status.get(key) == value, f"status[{key!r}]: {measurement.status}"


def test_the_corpus_covers_every_family_and_every_broadcast_state() -> None:
    assert len(CASES) >= 60
    expected = [vector["expected"] for _, _, vector in CASES]
    kinds = {e.get("kind") for e in expected}
    assert {"blood_pressure", "weight", "body_composition", "glucose"} <= kinds
    decoded = [(v["profile"], _decode(v)) for _, _, v in CASES if "profile" in v]
    for profile in ("xiaomi_scale", "xiaomi_body_composition"):
        states = [m.status for p, m in decoded if p == profile]
        assert any(not st["stabilized"] for st in states)  # still settling
        assert any(st["stabilized"] and not st["load_removed"] for st in states)  # stabilized
        assert any(st["load_removed"] for st in states)  # load removed
    with_impedance = [e for e in expected if "impedance" in e.get("values", {})]
    without_impedance = [e for e in expected if "impedance" in e.get("absent", [])]
    assert with_impedance and without_impedance
    # The reserved-bit captures: real cuffs set flag bits the specification reserves.
    assert any("reserved_flags" in e.get("status", {}) for e in expected)
    assert any("error" in e for e in expected)  # and truncation still raises


@pytest.mark.parametrize(("name", "source", "vector"), CASES, ids=[case[0] for case in CASES])
def test_each_vector_decodes_to_what_its_source_states(
    name: str, source: dict[str, Any], vector: dict[str, Any]
) -> None:
    assert source.get("repository") or source.get("post"), f"{name} has no source"
    expected = vector["expected"]
    if "error" in expected:
        with pytest.raises(DecodeError, match=expected["error"]):
            _decode(vector)
        return
    _assert_matches(_decode(vector), expected)
