"""Benchmarks for the gateway: the floor, pipeline throughput, alert latency, footprint, drain.

Run them all with ``python -m bench`` (or ``bench/run.sh``); see ``bench/README.md``. Nothing
here is collected by the test command (``testpaths = ["tests"]``).
"""
