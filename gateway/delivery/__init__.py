"""Delivery: the worker taking a destination's queued items to its exporter; retry policy."""
