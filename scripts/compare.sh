#!/usr/bin/env bash
# Side-by-side benchmark of rmpi against Open MPI (forced onto loopback TCP) and raw TCP
# (NetPIPE's NPtcp), in one run on one machine. Writes per-size medians as CSV, markdown
# tables and plots into docs/perf/, and refreshes the results section of docs/performance.md.
#
# Usage: scripts/compare.sh [--quick] [--only LIST] [--rounds N] [--budget S] [--out DIR]
#                           [--no-build] [--nice N]
#   --quick          one round, sizes up to 1 MiB: a smoke test of the whole pipeline
#   --only LIST      comma-separated tests: latency,bw,nptcp,bcast,reduce,allreduce,gather,
#                    scatter,barrier,allgather,alltoall,reduce_scatter,scan (default: all)
#   --rounds N       rounds of alternating runs (default 3)
#   --budget S       stop starting new rounds when the next one would end after S seconds
#                    from the start of the script (default 840, i.e. 14 minutes)
#   --out DIR        where CSV/markdown/plots go (default docs/perf); docs/performance.md is
#                    only rewritten when DIR is the default
#   --no-build       use the rmpi binaries already in the target dir instead of building them
#   --nice N         run every benchmark process under `nice -n N` (e.g. -5 as root on a machine
#                    shared with compile jobs; both sides and NPtcp get the same priority)
# Environment: COMPARE_RUN_TIMEOUT (seconds one sweep may take, default 120; a sweep that times
#   out is not run again in later rounds), CARGO_TARGET_DIR.
#
# Runs unattended as root on a fresh Debian 12: installs openmpi-bin, libopenmpi-dev, gcc,
# netpipe-tcp, gnuplot-nox and python3 only when their commands are missing.
# If rmpi's benchmark programs cannot be built or fail, the Open MPI and NPtcp parts still
# run and rmpi's columns say "pending".
set -euo pipefail

START=$(date +%s)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET/compare
RAW=$WORK/raw
OUT=$ROOT/docs/perf
DOC=$ROOT/docs/performance.md

ROUNDS=3
QUICK=0
BUDGET=840
BUILD=1
NICE=0
ONLY=""
P2P_TESTS=(latency bw)
COLL_TESTS=(bcast reduce allreduce gather scatter barrier allgather alltoall reduce_scatter scan)
COLL_RANKS=(2 4)
RUN_TIMEOUT=${COMPARE_RUN_TIMEOUT:-120}
declare -A HUNG=() # "impl test np" that timed out once: not run again

log() {
    printf '[compare %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - START))" "$*" >&2
}
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1; ROUNDS=1 ;;
    --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; ROUNDS=$2; shift ;;
    --budget) [ $# -ge 2 ] || die "--budget needs seconds"; BUDGET=$2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$(realpath -m "$2"); DOC=""; shift ;;
    --no-build) BUILD=0 ;;
    --nice) [ $# -ge 2 ] || die "--nice needs a niceness"; NICE=$2; shift ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, got '$ROUNDS'"
[[ $BUDGET =~ ^[0-9]+$ ]] || die "--budget wants seconds, got '$BUDGET'"
[[ $NICE =~ ^-?[0-9]+$ ]] || die "--nice wants an integer, got '$NICE'"
PRIO=(nice -n "$NICE")

selected() {
    [ -z "$ONLY" ] && return 0
    case ",$ONLY," in *",$1,"*) return 0 ;; esac
    return 1
}
if [ -n "$ONLY" ]; then
    for t in ${ONLY//,/ }; do
        case " ${P2P_TESTS[*]} ${COLL_TESTS[*]} nptcp " in
        *" $t "*) ;;
        *) die "unknown test '$t' in --only" ;;
        esac
    done
fi

# ---------------------------------------------------------------- prerequisites
need_pkgs=()
command -v gcc >/dev/null || need_pkgs+=(gcc)
command -v mpicc >/dev/null || need_pkgs+=(libopenmpi-dev)
command -v mpirun >/dev/null || need_pkgs+=(openmpi-bin)
command -v NPtcp >/dev/null || need_pkgs+=(netpipe-tcp)
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v timeout >/dev/null || need_pkgs+=(coreutils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${need_pkgs[*]}; run as root or install them first"
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

rm -rf "$RAW"
mkdir -p "$RAW/rmpi" "$RAW/ompi" "$RAW/nptcp" "$OUT"

# ---------------------------------------------------------------- builds
log "building ompi_bench"
mpicc -O2 -Wall -o "$WORK/ompi_bench" "$ROOT/benches/compare/ompi_bench.c"

OURS_OK=0
OURS_NOTE="not built"
if [ "$BUILD" -eq 1 ]; then
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on its PATH
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH=$HOME/.cargo/bin:$PATH
    fi
    if command -v cargo >/dev/null; then
        log "building rmpi benchmarks (cargo build --release -p rmpi-benches -p rmpirun --bins)"
        if (cd "$ROOT" && cargo build --release -p rmpi-benches -p rmpirun --bins) \
            >"$WORK/cargo-build.log" 2>&1; then
            OURS_OK=1
            OURS_NOTE="built"
        else
            OURS_NOTE="cargo build failed (see $WORK/cargo-build.log)"
            log "rmpi build failed; its columns will say pending:" \
                "$(tail -n 3 "$WORK/cargo-build.log" | tr '\n' ' ')"
        fi
    else
        OURS_NOTE="cargo not installed"
        log "cargo not found; rmpi columns will say pending"
    fi
else
    OURS_OK=1
    OURS_NOTE="--no-build: binaries already in $TARGET/release"
fi
RMPIRUN=$TARGET/release/rmpirun
if [ "$OURS_OK" -eq 1 ] && [ ! -x "$RMPIRUN" ]; then
    OURS_OK=0
    OURS_NOTE="$RMPIRUN not found"
fi

# ---------------------------------------------------------------- how each side runs
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none
    --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo
    --mca oob_tcp_if_include lo --mca coll '^sm' --mca btl_base_warn_component_unused 0)

size_args() { # test -> extra arguments limiting sizes in --quick mode
    if [ "$QUICK" -eq 1 ] && [ "$1" != barrier ]; then
        case $1 in
        latency) echo "-m 0:1048576" ;;
        bw) echo "-m 1:1048576" ;;
        *) echo "-m 8:1048576" ;;
        esac
    fi
}

# run_one IMPL TEST RANKS ROUND: one sweep, output in $RAW/IMPL/TEST_RANKS_rROUND.txt
run_one() {
    local impl=$1 test=$2 np=$3 round=$4
    local out=$RAW/$impl/${test}_${np}_r${round}
    local -a cmd
    # shellcheck disable=SC2207
    local -a extra=($(size_args "$test"))
    if [ "$impl" = rmpi ]; then
        local bin=$TARGET/release/osu_$test
        if [ "$OURS_OK" -ne 1 ] || [ ! -x "$bin" ]; then
            echo "${OURS_NOTE}; $bin missing" >"$out.missing"
            return 0
        fi
        cmd=("$RMPIRUN" --oversubscribe -n "$np" "$bin" "${extra[@]}")
    else
        cmd=("${MPIRUN[@]}" -n "$np" "$WORK/ompi_bench" "$test" "${extra[@]}")
    fi
    if [ -n "${HUNG["$impl $test $np"]:-}" ]; then
        echo "timed out in an earlier round; not run again" >"$out.missing"
        return 0
    fi
    if [ $(($(date +%s) - START)) -gt "$BUDGET" ]; then
        echo "time budget of ${BUDGET}s used up" >"$out.missing"
        return 0
    fi
    local t0 rc=0
    t0=$(date +%s%N)
    timeout -k 10 "$RUN_TIMEOUT" "${PRIO[@]}" "${cmd[@]}" \
        >"$out.txt" 2>"$out.err" </dev/null || rc=$?
    echo "$impl $test $np $round rc=$rc $((($(date +%s%N) - t0) / 1000000))ms" >>"$RAW/runs.log"
    if [ "$rc" -ne 0 ]; then
        log "$impl $test -n $np round $round failed (exit $rc):" \
            "$(tail -n 2 "$out.err" | tr '\n' ' ')"
        mv "$out.txt" "$out.failed"
        # timeout(1) exits 124 (or 137 after -k): a hang is not worth waiting for again
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then HUNG["$impl $test $np"]=1; fi
    fi
}

# NetPIPE ping-pong over 127.0.0.1; receiver and transmitter are both ours to stop.
run_nptcp() {
    local round=$1 max=16777216 port rx rc=1 try
    [ "$QUICK" -eq 1 ] && max=1048576
    for try in 1 2 3; do
        port=$((20000 + (RANDOM % 20000)))
        "${PRIO[@]}" NPtcp -P "$port" -p 0 -u "$max" >"$RAW/nptcp/rx_r$round.log" 2>&1 &
        rx=$!
        sleep 0.5
        rc=0
        timeout -k 5 120 "${PRIO[@]}" NPtcp -h 127.0.0.1 -P "$port" -p 0 -u "$max" \
            -o "$RAW/nptcp/np_r$round.out" >"$RAW/nptcp/tx_r$round.log" 2>&1 || rc=$?
        if kill -0 "$rx" 2>/dev/null; then
            sleep 1
            kill "$rx" 2>/dev/null || true
        fi
        wait "$rx" 2>/dev/null || true
        [ "$rc" -eq 0 ] && break
        log "NPtcp round $round try $try failed (exit $rc), retrying on another port"
    done
    echo "nptcp - 2 $round rc=$rc" >>"$RAW/runs.log"
}

# ---------------------------------------------------------------- rounds
{
    echo "date_utc=$(date -u '+%Y-%m-%d %H:%M')"
    echo "host_cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "host_cores=$(nproc)"
    echo "kernel=$(uname -r)"
    echo "ompi_version=$(mpirun --version 2>/dev/null | head -n1)"
    echo "rustc_version=$(rustc --version 2>/dev/null || echo none)"
    echo "git_commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "quick=$QUICK"
    echo "nice=$NICE"
    echo "ours_ok=$OURS_OK"
    echo "ours_note=$OURS_NOTE"
    echo "mpirun_cmd=${MPIRUN[*]} -n N ompi_bench TEST"
    echo "rmpirun_cmd=target/release/rmpirun --oversubscribe -n N target/release/osu_TEST"
    echo "nptcp_cmd=NPtcp -P PORT -p 0 -u MAX & NPtcp -h 127.0.0.1 -P PORT -p 0 -u MAX -o FILE"
} >"$RAW/meta.env"

done_rounds=0
last_round=0
for ((r = 1; r <= ROUNDS; r++)); do
    now=$(date +%s)
    if [ "$r" -gt 1 ] && [ $((now - START + last_round + 30)) -gt "$BUDGET" ]; then
        log "stopping after $done_rounds round(s): another would pass the ${BUDGET}s budget"
        break
    fi
    rs=$(date +%s)
    echo "load_round_$r=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.env"
    log "round $r/$ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    # alternate who goes first, so neither side always runs on a machine the other just warmed
    if [ $((r % 2)) -eq 1 ]; then order=(rmpi ompi); else order=(ompi rmpi); fi
    for t in "${P2P_TESTS[@]}"; do
        selected "$t" || continue
        for impl in "${order[@]}"; do run_one "$impl" "$t" 2 "$r"; done
    done
    if selected nptcp || selected latency || selected bw; then run_nptcp "$r"; fi
    for np in "${COLL_RANKS[@]}"; do
        for t in "${COLL_TESTS[@]}"; do
            selected "$t" || continue
            for impl in "${order[@]}"; do run_one "$impl" "$t" "$np" "$r"; done
        done
    done
    done_rounds=$r
    last_round=$(($(date +%s) - rs))
    log "round $r took ${last_round}s"
done

END=$(date +%s)
{
    echo "rounds=$done_rounds"
    echo "rounds_requested=$ROUNDS"
    echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "runtime_s=$((END - START))"
} >>"$RAW/meta.env"

# ---------------------------------------------------------------- report
log "writing CSV, tables and plots to $OUT"
report_args=(--raw "$RAW" --out "$OUT")
[ -n "$DOC" ] && report_args+=(--doc "$DOC")
python3 "$ROOT/scripts/plot.py" "${report_args[@]}"
if [ -f "$OUT/plots.gp" ]; then
    (cd "$OUT" && gnuplot plots.gp) || log "gnuplot failed; CSV and tables are still written"
fi
log "done in $(($(date +%s) - START))s ($done_rounds round(s)); raw outputs in $RAW"
