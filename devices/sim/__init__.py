"""Simulated BLE devices behind a simulated BlueZ, reached through bleak's real Linux backend.

* ``dbus_daemon.PrivateDbusDaemon``: a private bus (no root, no system bus).
* ``bluez.SimulatedBlueZ``: ``org.bluez`` on that bus (adapter, devices, GATT objects).
* ``peripheral.Peripheral``: the base of device models (GATT table, pairing, slow discovery).
* ``health_device.SimulatedHealthDevice``: what every home measuring device has (a clock that is
  off, Current Time and Battery services, connect-measure-disconnect cycles, faults); the
  models: ``blood_pressure_cuff``, ``weight_scale`` (two users), ``body_composition_scale``,
  ``glucose_meter`` (records behind RACP), ``thermometer``, ``pulse_oximeter``,
  ``heart_rate_strap``.
* ``script.script_to_measurements``: config rows -> the readings a model plays back.
* ``radio.SimulatedRadio``: all of the above for the running gateway (sets the system bus).
"""
