"""Simulated BLE devices behind a simulated BlueZ, reached through bleak's real Linux backend.

* ``dbus_daemon.PrivateDbusDaemon``: a private bus (no root, no system bus).
* ``bluez.SimulatedBlueZ``: ``org.bluez`` on that bus (adapter, devices, GATT objects).
* ``peripheral.Peripheral``: the base of device models (GATT table, pairing, slow discovery).
* ``health_device.SimulatedHealthDevice``: what every home measuring device has (a clock that is
  off, Current Time and Battery services, connect-measure-disconnect cycles, faults); the
  models: ``blood_pressure_cuff``, ``weight_scale`` (two users), ``body_composition_scale``,
  ``glucose_meter`` (records behind RACP), ``thermometer``, ``pulse_oximeter``,
  ``heart_rate_strap``.
* Device families with their own ways (each following captures or public parsers, cited in
  its module): ``broadcast_scale`` (Xiaomi scales that advertise each weighing),
  ``uds_scale`` (User Data Service scale that wants a consent code), ``date_time_cuff`` (an
  A&D-style cuff whose clock is Date Time 0x2A08), ``beurer_cuff`` (a BM85's quirky bytes),
  ``omron_cuff`` (an Omron cuff that hands out its history from EEPROM).
* ``script.script_to_measurements``: config rows -> the readings a model plays back.
* ``simulator_process.SimulatorProcess``: the private bus and the simulated BlueZ with its
  devices in a process of their own, as bluetoothd is on a hub (what the gateway runs; sets the
  system bus, ``system_bus``); ``radio.SimulatedRadio``: the same inside the calling process,
  for tests that drive the devices themselves.
* ``lifeline``: the simulation's processes die with the process that started them, SIGKILL
  included (the parent-death signal).
"""
