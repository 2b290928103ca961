#!/bin/sh
# Run every benchmark and write bench/results/latest.md (pass --quick for a run under a minute).
set -e
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench "$@"
