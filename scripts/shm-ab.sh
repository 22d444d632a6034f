#!/usr/bin/env bash
# A/B comparison of rmpi builds against Open MPI's shared-memory path (vader) on one host,
# alternating the sides in every round (A B vader, then vader B A, ...) and printing per-size
# medians over the rounds, with the load average at the start of each round.
#
# Usage: scripts/shm-ab.sh [--rounds N] [--load K] [--np P] [--sizes MIN:MAX] [--no-vader]
#                          TEST NAME=BINDIR [NAME=BINDIR ...]
#   TEST      latency, bw, or any other osu_TEST program (allreduce, bcast, ...)
#   BINDIR    a target/release directory holding rmpirun and osu_TEST
#   --rounds  rounds (default 7)
#   --load K  run K busy loops beside every measurement (default 0: only what else runs)
#   --np P    ranks (default 2)
#   --sizes   the programs' -m argument (default 8:8)
#   --iters N the programs' -i argument (default: theirs)
#   --no-vader  skip Open MPI
# Environment: RMPI_* variables pass through to the rmpi sides; OMPI_BENCH (default
# /tmp/shm-ab/ompi_bench, built from benches/compare/ompi_bench.c when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=7 LOAD=0 NP=2 SIZES=8:8 VADER=1 ITERS=()
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --load) LOAD=$2; shift ;;
    --np) NP=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --iters) ITERS=(-i "$2"); shift ;;
    --no-vader) VADER=0 ;;
    *) break ;;
    esac
    shift
done
[ $# -ge 2 ] || { sed -n '2,19p' "$0"; exit 2; }
TEST=$1; shift
SIDES=("$@")
WORK=/tmp/shm-ab
mkdir -p "$WORK"
OMPI_BENCH=${OMPI_BENCH:-$WORK/ompi_bench}
if [ "$VADER" -eq 1 ]; then
    [ -x "$OMPI_BENCH" ] || mpicc.openmpi -O2 -o "$OMPI_BENCH" "$ROOT/benches/compare/ompi_bench.c"
    SIDES+=("vader=")
fi
OUT=$(mktemp -d "$WORK/run.XXXX")
loaders=()
stop_load() { [ ${#loaders[@]} -eq 0 ] || kill "${loaders[@]}" 2>/dev/null || true; loaders=(); }
trap stop_load EXIT
for i in $(seq 1 "$LOAD"); do (while :; do :; done) & loaders+=($!); done

run_side() { # NAME=BINDIR ROUND
    local name=${1%%=*} dir=${1#*=} f=$OUT/${1%%=*}.$2
    if [ "$name" = vader ]; then
        timeout 120 mpirun.openmpi --allow-run-as-root --oversubscribe --mca pml ob1 \
            --mca btl vader,self --mca coll '^sm' --mca btl_base_warn_component_unused 0 \
            -n "$NP" "$OMPI_BENCH" "$TEST" -m "$SIZES" "${ITERS[@]}" >"$f" 2>&1 || echo "# failed" >>"$f"
    else
        timeout 120 "$dir/rmpirun" --oversubscribe -n "$NP" "$dir/osu_$TEST" -m "$SIZES" \
            "${ITERS[@]}" >"$f" 2>&1 || echo "# failed" >>"$f"
    fi
}
for r in $(seq 1 "$ROUNDS"); do
    echo "round $r load $(cut -d' ' -f1-4 /proc/loadavg)" >&2
    order=("${SIDES[@]}")
    if [ $((r % 2)) -eq 0 ]; then
        order=()
        for ((k = ${#SIDES[@]} - 1; k >= 0; k--)); do order+=("${SIDES[k]}"); done
    fi
    for s in "${order[@]}"; do run_side "$s" "$r"; done
done
stop_load
python3 - "$OUT" "$TEST" "${SIDES[@]}" <<'PY'
import sys, statistics, glob, os
out, test, sides = sys.argv[1], sys.argv[2], [s.split('=')[0] for s in sys.argv[3:]]
vals = {}
for s in sides:
    for f in sorted(glob.glob(os.path.join(out, s + '.*'))):
        for line in open(f):
            p = line.split()
            if len(p) >= 2 and not line.startswith('#'):
                try:
                    size, v = int(p[0]), float(p[1])
                except ValueError:
                    continue
                vals.setdefault(size, {}).setdefault(s, []).append(v)
print(f"# {test}: median over rounds (min-max) [rounds]; raw in {out}")
print("size " + " ".join(f"{s:>24}" for s in sides))
for size in sorted(vals):
    cells = []
    for s in sides:
        v = vals[size].get(s, [])
        cells.append(f"{statistics.median(v):9.2f} ({min(v):.2f}-{max(v):.2f}) [{len(v)}]" if v else f"{'-':>24}")
    print(f"{size} " + " ".join(f"{c:>24}" for c in cells))
PY
