"""Conversions between the UCUM units that health devices report."""

from __future__ import annotations

from collections.abc import Callable

GLUCOSE_MG_PER_MMOL = 18.016  # molar mass of glucose, 180.16 g/mol

_LINEAR: dict[tuple[str, str], float] = {
    ("kPa", "mm[Hg]"): 1 / 0.133322387415,
    ("[lb_av]", "kg"): 0.45359237,
    ("[in_i]", "m"): 0.0254,
    ("mmol/L", "mg/dL"): GLUCOSE_MG_PER_MMOL,
}
_AFFINE: dict[tuple[str, str], Callable[[float], float]] = {
    ("[degF]", "Cel"): lambda f: (f - 32) * 5 / 9,
    ("Cel", "[degF]"): lambda c: c * 9 / 5 + 32,
}


class UnitError(ValueError):
    pass


def convert(value: float, source: str, target: str) -> float:
    if source == target:
        return value
    if (source, target) in _LINEAR:
        return value * _LINEAR[(source, target)]
    if (target, source) in _LINEAR:
        return value / _LINEAR[(target, source)]
    if (source, target) in _AFFINE:
        return _AFFINE[(source, target)](value)
    raise UnitError(f"cannot convert {source} to {target}")


def convertible(source: str, target: str) -> bool:
    try:
        convert(1.0, source, target)
    except UnitError:
        return False
    return True
