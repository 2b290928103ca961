"""Everything that knows Bluetooth: number formats, GATT codecs, the bleak source, simulators."""
