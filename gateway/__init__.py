"""Health-data telemetry gateway: BLE medical devices in, privacy-filtered deliveries out."""

__version__ = "0.1.0"
