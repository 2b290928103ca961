"""Which kind an alert rule is, from its keys, and whether its keys fit together.

One ``[[alert_rules]]`` table holds every kind of rule; the keys decide the kind:

| kind | keys |
|---|---|
| limit | ``above`` and/or ``below`` |
| change | ``rise`` or ``fall``, ``within`` |
| mean | ``mean_above`` and/or ``mean_below``, ``over``; optional ``times``, ``min_readings`` |
| count | ``count``, ``above`` and/or ``below``, ``within`` |
| missing | ``missing_for`` (no ``value``: it watches a kind of reading) |

Each problem is a one-line message that names the key to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devices.profiles import PROFILES

if TYPE_CHECKING:
    from gateway.settings import AlertRuleSettings

LIMIT_COOLDOWN_S = 3600.0
# The keys each kind may use beside kind, value, unit, severity, cooldown_s, vital_interest and
# instructions.
_KEYS = {
    "limit": {"above", "below"},
    "change": {"rise", "fall", "within"},
    "mean": {"mean_above", "mean_below", "over", "times", "min_readings"},
    "count": {"count", "above", "below", "within"},
    "missing": {"missing_for"},
}
_SHARED = {"kind", "value", "unit", "severity", "cooldown_s", "vital_interest", "instructions"}


def rule_type(rule: AlertRuleSettings) -> str:
    if rule.missing_for is not None:
        return "missing"
    if rule.rise is not None or rule.fall is not None:
        return "change"
    if rule.mean_above is not None or rule.mean_below is not None:
        return "mean"
    if rule.count is not None:
        return "count"
    return "limit"


def window_s(rule: AlertRuleSettings) -> float:
    """The rule's window in seconds (0 for a limit)."""
    return float(rule.within or rule.over or rule.missing_for or 0.0)


def default_cooldown(rule: AlertRuleSettings) -> float:
    """A limit repeats after an hour; a window rule after a further window while it still holds;
    a missing-readings rule never repeats within one gap."""
    kind = rule_type(rule)
    if kind == "limit":
        return LIMIT_COOLDOWN_S
    if kind == "missing":
        return float("inf")
    return window_s(rule)


def check_rule(rule: AlertRuleSettings) -> None:
    """Raises ValueError naming the key when a rule's keys do not make one kind of rule."""
    kind = rule_type(rule)
    given = {key for key in rule.model_fields_set if getattr(rule, key) is not None}
    stray = sorted(given - _SHARED - _KEYS[kind])
    if stray:
        raise ValueError(
            f"`{stray[0]}` does not belong in a {kind} rule (made one by its keys); "
            f"a {kind} rule uses {_keys_text(kind)}"
        )
    if kind == "missing":
        if rule.value is not None:
            raise ValueError(
                "`value` does not belong in a missing_for rule: it watches every reading of"
                " its `kind`; remove `value`"
            )
        if rule.kind not in PROFILES:
            raise ValueError(
                f"`kind` {rule.kind!r} is not a kind of reading a device sends; use one of "
                + ", ".join(sorted(PROFILES))
            )
        return
    if rule.value is None:
        raise ValueError(f"`value` is missing: name the value the {kind} rule judges")
    if kind == "limit" and rule.above is None and rule.below is None:
        raise ValueError("an alert rule needs `above`, `below` or both")
    if kind == "change":
        if rule.rise is not None and rule.fall is not None:
            raise ValueError("`rise` and `fall`: use one per rule (write two rules for both)")
        if rule.within is None:
            raise ValueError('`within` is missing: the window for the change, such as "3d"')
    if kind == "mean" and rule.over is None:
        raise ValueError('`over` is missing: the window to average over, such as "7d"')
    if kind == "count":
        if rule.above is None and rule.below is None:
            raise ValueError("`above` or `below` is missing: the limit whose crossings to count")
        if rule.within is None:
            raise ValueError('`within` is missing: the window to count in, such as "7d"')


def _keys_text(kind: str) -> str:
    return ", ".join(f"`{key}`" for key in sorted(_KEYS[kind]))
