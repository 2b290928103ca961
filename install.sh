#!/usr/bin/env bash
# Set up the health gateway on Debian, Ubuntu or Raspberry Pi OS:
# system packages (dbus, python3-venv), then the gateway in ./.venv.
#   ./install.sh           the gateway
#   ./install.sh --test    the gateway and its test tools (and Debian's chromium, which the
#                          browser tests drive through Playwright, axe-core from npm for
#                          their accessibility checks, Node.js with npm for the real
#                          FHIR server the tests run (tests/fhir_server, `npm ci` there),
#                          and Debian's mosquitto, the real MQTT broker the fleet tests start)
set -euo pipefail
cd "$(dirname "$0")"

extra=""
if [[ "${1:-}" == "--test" ]]; then extra="[test]"; fi

missing=()
command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if [[ -n "$extra" ]]; then
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if ((${#missing[@]})); then
  echo "install.sh: installing system packages: ${missing[*]}"
  sudo_cmd=""
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"install.sh: Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY

if [[ ! -x .venv/bin/python ]]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extra}"
# The service runs with PYTHONOPTIMIZE=2 (config/health-gateway.service) and may not write to
# this folder: compile the matching bytecode now, or each start compiles every module again.
.venv/bin/python -m compileall -q -j 0 -o 2 .venv/lib gateway devices filters >/dev/null
if [[ -n "$extra" ]]; then
  # axe-core, pinned by tests/a11y/package-lock.json (the browser tests load it into the page).
  (cd tests/a11y && npm ci --no-audit --no-fund --silent)
  # The pinned Medplum packages from package-lock.json (they ask for Node 22; Node 20, Debian
  # 12's, runs them with --experimental-websocket, which the tests pass).
  (cd tests/fhir_server && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  if ((node_major < 20)); then
    echo "install.sh: the tests' FHIR server needs Node.js 20 or newer, found $(node --version): see README, Tests"
  fi
fi
echo "install.sh: done. Try: .venv/bin/health-gateway demo"
