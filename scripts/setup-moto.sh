#!/usr/bin/env bash
# Install the moto EC2 emulator (server mode) into a Python virtual environment, for the
# rmpi-ec2 tests. Idempotent: does nothing (and prints nothing) when `moto_server` is already there.
#
#   RMPI_MOTO_VENV   where the venv lives (default: <repo>/target/moto-venv)
#
# On success the last line of stdout is the path of the `moto_server` executable.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RMPI_MOTO_VENV:-$repo/target/moto-venv}"
server="$venv/bin/moto_server"

if [[ -x "$server" ]]; then
    echo "$server"
    exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup-moto: $python not found; install python3 and python3-venv" >&2
    exit 1
fi

# Serialise concurrent installs (several test binaries may call this at once).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [[ -x "$server" ]]; then
    echo "$server"
    exit 0
fi

echo "setup-moto: installing moto[ec2,server] into $venv" >&2
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[ec2,server]>=5,<6" >&2
if [[ ! -x "$server" ]]; then
    echo "setup-moto: pip finished but $server is missing" >&2
    exit 1
fi
echo "$server"
