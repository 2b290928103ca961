#!/usr/bin/env bash
# Set up the health gateway on Debian, Ubuntu or Raspberry Pi OS:
# system packages (dbus, python3-venv), then the gateway in ./.venv.
#   ./install.sh           the gateway
#   ./install.sh --test    the gateway and its test tools (and Debian's chromium, which the
#                          browser tests drive through Playwright, and Debian's mosquitto,
#                          the real MQTT broker the fleet tests start)
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
echo "install.sh: done. Try: .venv/bin/health-gateway demo"
