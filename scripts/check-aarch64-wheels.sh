#!/usr/bin/env bash
# Check that every runtime dependency of the gateway (and every dependency of those) installs
# from a prebuilt wheel on a 64-bit Raspberry Pi: Raspberry Pi OS bookworm, aarch64, glibc 2.36,
# Python 3.11. A dependency without such a wheel would need a compiler (and, for some, Rust) on
# the Pi, so the check fails and names it.
#
#   scripts/check-aarch64-wheels.sh            runtime dependencies (what ./install.sh installs)
#   scripts/check-aarch64-wheels.sh --test     also the test extra
#
# It asks the package index through pip (`pip download --only-binary=:all: --platform ...`),
# so it needs the index to be reachable; it installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python=python3
extra=""
if [[ "${1:-}" == "--test" ]]; then extra="test"; fi

mapfile -t requirements < <(EXTRA="$extra" "$python" - <<'PY'
import os
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = list(project["dependencies"])
extra = os.environ["EXTRA"]
if extra:
    requirements += project["optional-dependencies"][extra]
for requirement in requirements:
    print(requirement)
PY
)

platforms=()
for tag in manylinux_2_36 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 \
           manylinux_2_27 manylinux_2_24 manylinux2014 manylinux_2_17; do
  platforms+=(--platform "${tag}_aarch64")
done

dest="$(mktemp -d)"
trap 'rm -rf "$dest"' EXIT
echo "check-aarch64-wheels: ${#requirements[@]} requirements, cp311 on aarch64 (glibc 2.36)"
if ! "$python" -m pip download --quiet --no-cache-dir --only-binary=:all: \
     "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
     --abi none --dest "$dest" "${requirements[@]}"; then
  echo "check-aarch64-wheels: FAILED: some dependency has no aarch64 wheel (see pip's message above)" >&2
  exit 1
fi

native=0
total=0
for wheel in "$dest"/*.whl; do
  total=$((total + 1))
  name="$(basename "$wheel")"
  case "$name" in
    *-none-any.whl) ;;
    *aarch64*.whl) native=$((native + 1)); echo "  aarch64  $name" ;;
    *) echo "check-aarch64-wheels: unexpected wheel $name" >&2; exit 1 ;;
  esac
done
echo "check-aarch64-wheels: OK: $total wheels ($native built for aarch64, the rest pure Python)"
