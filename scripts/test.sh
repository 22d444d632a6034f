#!/usr/bin/env bash
# Runs rmpi's whole test suite. Run as root on Debian/Ubuntu it first installs what the
# multi-host, Slurm, Hydra and EC2 tests need (openssh, iproute2, Slurm, MPICH, Open MPI,
# python3-venv + moto); as another user it uses
# what is there and the tests that need root say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# slurmctld/slurmd/slurm-client: the Slurm cluster of the srun tests; mpich: Hydra's mpiexec;
# openmpi-bin: Open MPI's mpirun (the rendezvous route).
packages=(openssh-server openssh-client iproute2 procps python3-venv python3-pip
  slurmctld slurmd slurm-client mpich openmpi-bin)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    # The tests start their own sshd, slurmctld and slurmd: packages must not start the
    # system's copies at install time (containers usually say so already in policy-rc.d).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$policy" ] || rm -f "$policy"
  fi
fi

# The EC2 tests run against a real EC2 API emulator (moto), in a virtualenv under target/.
if [ -x scripts/setup-moto.sh ]; then
  scripts/setup-moto.sh
fi

# Release mode: the multi-rank tests move hundreds of MiB and start dozens of processes.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The suites that move messages, once more with TCP between local ranks instead of shared memory.
echo "test.sh: again with RMPI_SHM=0"
RMPI_SHM=0 cargo test --release -p rmpi-transport -p rmpi-collectives -p rmpirun --no-fail-fast "$@" 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
set -e
# One closing line for the whole suite (cargo prints one per test binary).
totals=$(grep -E '^test result:' "$log" | awk '{p += $4; f += $6} END {printf "%d passed, %d failed", p, f}')
echo "tests: $totals"
exit "$status"
