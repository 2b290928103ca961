"""Everything that can be checked before the service starts, so a bad set-up fails at once."""

from __future__ import annotations

from devices.profiles import PROFILES
from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.webhook.config import WebhookDestination
from gateway.exporters.webhook.signing import SecretFormatError, parse_secret
from gateway.intake.device_targets import device_targets
from gateway.privacy.pseudonym_keys import load_key_ring
from gateway.secrets import read_secret
from gateway.settings import ConfigError, Settings
from gateway.units import convertible


def preflight(settings: Settings) -> None:
    """Raise ``ConfigError`` naming the key for anything the config file alone cannot show."""
    for destination in settings.destinations:
        prefix = f"destinations.{destination.name}"
        if isinstance(destination, AnalyticsDestination | AggregateDestination):
            read_secret(
                f"{prefix}.token", destination.token_file, destination.token_env, required=False
            )
        if isinstance(destination, AnalyticsDestination):
            key_file = settings.pseudonym_key_path(destination)
            if key_file.exists():
                load_key_ring(key_file, f"{prefix}.pseudonym_key_file")
        if isinstance(destination, FhirDestination):
            read_secret(
                f"{prefix}.token", destination.token_file, destination.token_env, required=False
            )
        elif isinstance(destination, WebhookDestination):
            secret = read_secret(
                f"{prefix}.secret", destination.secret_file, destination.secret_env
            )
            try:
                parse_secret(secret or "")
            except SecretFormatError as exc:
                raise ConfigError(f"{prefix}.secret: {exc}") from None
    rules = [(f"alert_rules[{i}]", rule) for i, rule in enumerate(settings.alert_rules)]
    rules += [
        (f"subjects[{s}].alert_rules[{i}]", rule)
        for s, subject in enumerate(settings.subjects)
        for i, rule in enumerate(subject.alert_rules)
    ]
    for key, rule in rules:
        profile = PROFILES.get(rule.kind)
        if profile is None or rule.value is None:  # missing_for rules watch a kind, not a value
            continue  # a rule for a kind no configured profile produces is harmless
        device_unit = profile.default_units.get(rule.value)
        if device_unit is None:
            raise ConfigError(
                f"{key}.value: {rule.kind} readings have no value {rule.value!r}; "
                f"use one of {', '.join(sorted(profile.default_units))}"
            )
        if rule.unit is not None and not convertible(device_unit, rule.unit):
            raise ConfigError(f"{key}.unit: cannot compare {rule.unit} with {device_unit}")
    device_targets(settings)  # reads each consent code file: missing, public or malformed fails
    if settings.uses_simulated_radio:
        from gateway.simulation import check_simulation  # only simulated hubs load the simulator

        check_simulation(settings)
