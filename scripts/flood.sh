#!/usr/bin/env bash
# The expensive cases of the fault campaign (issue #14), kept out of the test suite:
#   flood: 8 GiB of 1 MiB sends (and of 16 KiB sends) to a rank that waits on another tag for
#          10 s; with flow control its sender blocks and its memory stays near the credit.
#          Run with shared memory and with RMPI_SHM=0.
#   soak:  64 ranks for 3 minutes of ring exchanges (1 B .. 1 MiB) and allreduces; RSS and
#          descriptors must stay flat after the first tenth.
# Usage: scripts/flood.sh [flood|soak|all] (default all). Figures go to stdout; docs/wire-protocol.md
# ("Campaign") keeps the last ones.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
WHAT=${1:-all}
cd "$ROOT"
cargo build --release -q -p rmpirun -p rmpi-examples --bin flood --bin soak
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
if [[ $WHAT == flood || $WHAT == all ]]; then
    for shm in 1 0; do
        for msg in 1048576 16384; do
            echo "flood, RMPI_SHM=$shm, $msg-byte messages:"
            RMPI_SHM=$shm timeout 600 "$TARGET/rmpirun" -n 2 "$TARGET/flood" 8 "$msg" 10
        done
    done
fi
if [[ $WHAT == soak || $WHAT == all ]]; then
    echo "soak, 64 ranks, 180 s:"
    timeout 600 "$TARGET/rmpirun" -n 64 --timeout 400 "$TARGET/soak" 180
fi
