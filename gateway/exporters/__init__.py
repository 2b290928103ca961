"""Exporters: one folder per destination kind (payload, sending, route factory); one registry."""
