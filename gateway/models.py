"""The shared measurement model now lives in ``devices.models`` (importable by every layer);
this module keeps ``gateway.models`` working for existing imports."""

from devices.models import Measurement, Quantity

__all__ = ["Measurement", "Quantity"]
