"""Simulated BLE devices behind a simulated BlueZ, reached through bleak's real Linux backend.

* ``dbus_daemon.PrivateDbusDaemon``: a private bus (no root, no system bus).
* ``bluez.SimulatedBlueZ``: ``org.bluez`` on that bus (adapter, devices, GATT objects).
* ``peripheral.Peripheral``: the base of device models; ``blood_pressure_cuff`` is one.
* ``script.script_to_measurements``: config rows -> the readings a model plays back.
* ``radio.SimulatedRadio``: all of the above for the running gateway (sets the system bus).
"""
