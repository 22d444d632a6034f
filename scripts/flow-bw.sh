#!/usr/bin/env bash
# osu_bw before flow control, at main and at HEAD, alternating, over TCP and shared memory.
#
# Builds osu_bw and rmpirun at three commits (each from its own git worktree, one shared cargo
# target dir so dependencies build once), then runs them in rounds, A B C A B C ..., each build
# with its own rmpirun, over TCP (RMPI_SHM=0) and over shared memory. Prints, per transport and
# size, the median bandwidth of each build and its ratio to "before", plus the load average at
# the start and the end. docs/flow-control.md keeps the last table.
#
# Usage: scripts/flow-bw.sh [--rounds N] [--before REV] [--main REV] [--sizes MIN:MAX]
#   --rounds N     rounds of alternating runs (default 8)
#   --before REV   the build before flow control (default 286e38f)
#   --main REV     the main branch's build (default main)
#   --sizes A:B    message sizes (default 65536:4194304)
#   --no-build     run the binaries an earlier run left (and report their revisions)
# Environment: CARGO_TARGET_DIR (default target/ of this checkout); the work goes under
# $CARGO_TARGET_DIR/flow-bw.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET/flow-bw
ROUNDS=8
BEFORE=286e38f
MAIN=main
SIZES=65536:4194304
BUILD=1

log() { printf '[flow-bw %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; ROUNDS=$2; shift ;;
    --before) [ $# -ge 2 ] || die "--before needs a revision"; BEFORE=$2; shift ;;
    --main) [ $# -ge 2 ] || die "--main needs a revision"; MAIN=$2; shift ;;
    --sizes) [ $# -ge 2 ] || die "--sizes needs MIN:MAX"; SIZES=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

NAMES=(before main head)
declare -A REV=(
    [before]=$(git -C "$ROOT" rev-parse "$BEFORE")
    [main]=$(git -C "$ROOT" rev-parse "$MAIN")
    [head]=$(git -C "$ROOT" rev-parse HEAD)
)
mkdir -p "$WORK/raw"
rm -f "$WORK"/raw/*

for n in "${NAMES[@]}"; do
    if [ "$BUILD" = 0 ]; then
        [ -x "$WORK/bin-$n/osu_bw" ] || die "no earlier build of $n in $WORK/bin-$n"
        REV[$n]=$(cat "$WORK/bin-$n/REV" 2>/dev/null || echo unknown)
        continue
    fi
    src=$WORK/src-$n
    if [ -d "$src" ]; then
        git -C "$src" checkout --quiet --detach "${REV[$n]}"
    else
        git -C "$ROOT" worktree add --quiet --detach "$src" "${REV[$n]}"
    fi
    log "building $n (${REV[$n]:0:10})"
    (cd "$src" && CARGO_TARGET_DIR=$WORK/target cargo build --quiet --release \
        -p rmpi-benches -p rmpirun --bins) || die "building $n failed"
    mkdir -p "$WORK/bin-$n"
    cp "$WORK/target/release/osu_bw" "$WORK/target/release/rmpirun" "$WORK/bin-$n/"
    echo "${REV[$n]}" >"$WORK/bin-$n/REV"
done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "load at start: $LOAD_START"
for round in $(seq 1 "$ROUNDS"); do
    for mode in tcp shm; do
        shm=1
        [ "$mode" = tcp ] && shm=0
        for n in "${NAMES[@]}"; do
            out=$WORK/raw/$n-$mode-$round.txt
            if ! RMPI_SHM=$shm timeout 300 "$WORK/bin-$n/rmpirun" -n 2 \
                "$WORK/bin-$n/osu_bw" -m "$SIZES" >"$out" 2>&1; then
                log "round $round $n $mode failed: $(tail -n 2 "$out" | tr '\n' ' ')"
            fi
        done
    done
    log "round $round of $ROUNDS done (load $(cut -d' ' -f1 /proc/loadavg))"
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# One line per sample: build transport size MB/s.
for f in "$WORK"/raw/*.txt; do
    b=$(basename "$f" .txt)
    n=${b%%-*}
    rest=${b#*-}
    mode=${rest%%-*}
    awk -v n="$n" -v m="$mode" '/^[0-9]/ && NF == 2 { print n, m, $1, $2 }' "$f"
done | python3 -c '
import sys, statistics
from collections import defaultdict
s = defaultdict(list)
for line in sys.stdin:
    n, m, size, bw = line.split()
    s[(n, m, int(size))].append(float(bw))
names = ["before", "main", "head"]
def label(b):
    return f"{b >> 20}M" if b >= 1 << 20 else f"{b >> 10}K"
for m in ["tcp", "shm"]:
    sizes = sorted({k[2] for k in s if k[1] == m})
    print(f"\n{m} (median MB/s of n runs; ratio to before)\n")
    print("| size | before | main | head | main/before | head/before | runs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        med = {n: statistics.median(s[(n, m, size)]) if s[(n, m, size)] else float("nan") for n in names}
        runs = min(len(s[(n, m, size)]) for n in names)
        ratio = {n: med[n] / med["before"] if med["before"] else float("nan") for n in names}
        row = [label(size)] + ["%.0f" % med[n] for n in names]
        row += ["%.2f" % ratio["main"], "%.2f" % ratio["head"], str(runs)]
        print("| " + " | ".join(row) + " |")
'
echo
echo "before=${REV[before]:0:10} main=${REV[main]:0:10} head=${REV[head]:0:10} rounds=$ROUNDS"
echo "load average at start: $LOAD_START; at end: $LOAD_END"
