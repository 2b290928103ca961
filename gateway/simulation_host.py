"""The simulator's own process: ``python -m gateway.simulation_host PARENT_PID``.

Started by ``gateway.simulation.simulated_radio`` (through ``devices.sim.simulator_process``,
which owns the protocol): it plays the simulated devices of the gateway's config on the
private bus, in a process apart from the gateway, as bluetoothd and the devices are on a hub.
"""

from __future__ import annotations

import logging
import sys

import structlog

from devices.sim.simulator_process import run_child
from gateway.simulation import peripherals_from_spec


def main() -> None:
    # The simulator logs its own faults (a device task that failed) to stderr, which the
    # parent points at simulator.log in the simulation's state folder; stdout is the protocol.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    run_child(peripherals_from_spec)


if __name__ == "__main__":
    main()
