"""The ``mqtt`` destination kind: the fleet uplink over MQTT 5 (docs/fleet.md)."""
