#!/usr/bin/env bash
# Side-by-side benchmark of rmpi against Open MPI twice (forced onto loopback TCP, and on its
# shared-memory path, `--mca btl vader,self`) and raw TCP (NetPIPE's NPtcp), and for the
# collectives also against MPICH (ch4:ucx forced onto loopback TCP), in one run on one machine.
# rmpi runs as it runs by default: shared memory between its ranks (they are on one host). Writes per-size medians as CSV, markdown
# tables and plots into docs/perf/, and refreshes the results section of docs/performance.md.
#
# Usage: scripts/compare.sh [--quick] [--only LIST] [--rounds N] [--budget S] [--out DIR]
#                           [--no-build] [--nice N] [--no-mpich] [--no-vader]
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
#                    shared with compile jobs; every side and NPtcp get the same priority)
#   --no-mpich       skip MPICH (by default it runs the collectives at 2 and 4 ranks)
#   --no-vader       skip Open MPI's shared-memory path (by default it runs every test)
# Environment: COMPARE_RUN_TIMEOUT (seconds one sweep may take, default 120; a sweep that times
#   out is not run again in later rounds), COMPARE_MPICH_ITERS (MPICH's -i, default 20: its
#   ranks busy-poll, so with more ranks than cores every call takes milliseconds and MPICH gets
#   20 timed calls per size, 10 above 16 KiB, after 2 warm-up calls), CARGO_TARGET_DIR.
#
# Runs unattended as root on a fresh Debian 12: installs openmpi-bin, libopenmpi-dev, mpich,
# libmpich-dev, gcc, netpipe-tcp, gnuplot-nox and python3 only when their commands are missing.
# Open MPI is always called as mpirun.openmpi/mpicc.openmpi and MPICH as mpirun.mpich/
# mpicc.mpich (Debian's names), so the alternatives behind plain mpirun/mpicc do not matter;
# plain mpirun/mpicc are used for Open MPI only where the suffixed names do not exist.
# If rmpi's benchmark programs cannot be built or fail, the Open MPI and NPtcp parts still
# run and rmpi's columns say "pending"; if MPICH cannot build or run, its columns show "—".
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
MPICH=1
VADER=1
MPICH_ITERS=${COMPARE_MPICH_ITERS:-20}
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
    --no-mpich) MPICH=0 ;;
    --no-vader) VADER=0 ;;
    -h | --help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, got '$ROUNDS'"
[[ $BUDGET =~ ^[0-9]+$ ]] || die "--budget wants seconds, got '$BUDGET'"
[[ $NICE =~ ^-?[0-9]+$ ]] || die "--nice wants an integer, got '$NICE'"
[[ $MPICH_ITERS =~ ^[1-9][0-9]*$ ]] ||
    die "COMPARE_MPICH_ITERS wants a positive integer, got '$MPICH_ITERS'"
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
# MPICH only runs the collectives: without any selected, it has nothing to do
if [ "$MPICH" -eq 1 ]; then
    MPICH=0
    for t in "${COLL_TESTS[@]}"; do selected "$t" && MPICH=1; done
fi

# ---------------------------------------------------------------- prerequisites
# first_cmd NAME...: the first NAME that is an installed command (nothing if none is)
first_cmd() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null; then
            echo "$c"
            return 0
        fi
    done
}
need_pkgs=()
command -v gcc >/dev/null || need_pkgs+=(gcc)
# On Debian, libmpich-dev/mpich can own the plain mpicc/mpirun names: ask for Open MPI's own
OMPI_NAMES=(.openmpi)
command -v apt-get >/dev/null || OMPI_NAMES+=("")
[ -n "$(first_cmd "${OMPI_NAMES[@]/#/mpicc}")" ] || need_pkgs+=(libopenmpi-dev)
[ -n "$(first_cmd "${OMPI_NAMES[@]/#/mpirun}")" ] || need_pkgs+=(openmpi-bin)
if [ "$MPICH" -eq 1 ]; then
    command -v mpicc.mpich >/dev/null || need_pkgs+=(libmpich-dev)
    command -v mpirun.mpich >/dev/null || need_pkgs+=(mpich)
fi
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
OMPI_CC=$(first_cmd mpicc.openmpi mpicc)
OMPI_RUN=$(first_cmd mpirun.openmpi mpirun)
if [ -z "$OMPI_CC" ] || [ -z "$OMPI_RUN" ]; then die "Open MPI's mpicc/mpirun not found"; fi
OMPI_VERSION=$("$OMPI_RUN" --version 2>/dev/null | head -n1 || true)
case $OMPI_VERSION in
# Debian's mpirun.openmpi calls itself "mpirun.openmpi (OpenRTE) X": report it as plain mpirun
*"Open MPI"* | *OpenRTE*) OMPI_VERSION="mpirun (Open MPI) ${OMPI_VERSION##* }" ;;
*) die "$OMPI_RUN is not Open MPI ('$OMPI_VERSION'); install openmpi-bin" ;;
esac

rm -rf "$RAW"
mkdir -p "$RAW/rmpi" "$RAW/ompi" "$RAW/vader" "$RAW/mpich" "$RAW/nptcp" "$OUT"

# ---------------------------------------------------------------- builds
log "building ompi_bench ($OMPI_CC)"
"$OMPI_CC" -O2 -Wall -o "$WORK/ompi_bench" "$ROOT/benches/compare/ompi_bench.c"

MPICH_OK=0
MPICH_NOTE="skipped (--no-mpich or no collective selected)"
MPICH_VERSION=""
if [ "$MPICH" -eq 1 ]; then
    log "building mpich_bench (mpicc.mpich)"
    MPICH_VERSION=$(mpirun.mpich --version 2>/dev/null |
        sed -n 's/^ *Version: *\(.*\)$/MPICH \1/p' | head -n1 || true)
    # MPICH's mpi.h declares status arrays that -Wstringop-overflow misreads at MPI_Waitall
    if mpicc.mpich -O2 -Wall -Wno-stringop-overflow -o "$WORK/mpich_bench" \
        "$ROOT/benches/compare/ompi_bench.c" >"$WORK/mpich-build.log" 2>&1; then
        MPICH_OK=1
        MPICH_NOTE="built"
    else
        MPICH_NOTE="mpicc.mpich failed (see $WORK/mpich-build.log)"
        log "mpich_bench build failed; MPICH columns will be empty:" \
            "$(tail -n 3 "$WORK/mpich-build.log" | tr '\n' ' ')"
    fi
fi

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
# Both launchers keep their default binding, which is the same: a core per rank when the
# ranks fit the cores (2 here), no binding when they do not (4)
# shellcheck disable=SC2054 # the commas are inside MCA values
MPIRUN=("$OMPI_RUN" --allow-run-as-root --oversubscribe
    --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo
    --mca oob_tcp_if_include lo --mca coll '^sm' --mca btl_base_warn_component_unused 0)
# Open MPI's shared-memory path: the same, with the vader BTL instead of TCP (single-copy
# through CMA where the kernel allows it; the same collective algorithms as over TCP)
# shellcheck disable=SC2054 # the commas are inside MCA values
VADER_RUN=("$OMPI_RUN" --allow-run-as-root --oversubscribe
    --mca pml ob1 --mca btl vader,self --mca oob_tcp_if_include lo --mca coll '^sm'
    --mca btl_base_warn_component_unused 0)
# MPICH 4 (ch4:ucx): no shared memory between local ranks, UCX on TCP over loopback only
# shellcheck disable=SC2054 # the commas are inside a value
MPICH_ENV=(MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp,self UCX_NET_DEVICES=lo)
MPICH_ARGS=(-i "$MPICH_ITERS" -x 2)
# MPICH 4.0.2 over UCX/TCP with more ranks than cores now and then never returns from
# MPI_Finalize after printing its whole table: such a run is stopped this many seconds after
# its last row and its table kept (marked in a .stopped file that plot.py reports)
FINALIZE_GRACE=5

last_size() { # test -> the size of the last row a complete sweep prints
    if [ "$1" = barrier ]; then
        echo 0
    elif [ "$QUICK" -eq 1 ]; then
        echo 1048576
    else
        echo 16777216
    fi
}

# has_row FILE SIZE: FILE holds an OSU table row for SIZE (a one-number row is size 0)
has_row() {
    [ -f "$1" ] && awk -v want="$2" '!/^#/ && NF >= 1 {
        if ((NF == 1 ? 0 : $1) == want) found = 1 } END { exit !found }' "$1"
}

# descendants PID: every process below PID
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

# run_watched OUT LAST CMD...: run CMD under the timeout like any sweep, but once OUT.txt has
# the row for size LAST, give it FINALIZE_GRACE seconds to exit, then stop it and count the
# sweep as complete (exit status 0). Hydra puts its proxy and the ranks in process groups of
# their own, which timeout(1) does not signal: the ranks seen while it ran are killed by PID
# if they outlive it (a busy-polling orphan would spoil every later measurement).
run_watched() {
    local out=$1 last=$2 pid rc=0 done_at="" p stopped=0
    local -A seen=()
    shift 2
    timeout -k 10 "$RUN_TIMEOUT" "${PRIO[@]}" "$@" >"$out.txt" 2>"$out.err" </dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for p in $(descendants "$pid"); do seen[$p]=1; done
        if [ -z "$done_at" ] && has_row "$out.txt" "$last"; then done_at=$(date +%s); fi
        if [ -n "$done_at" ] && [ $(($(date +%s) - done_at)) -ge "$FINALIZE_GRACE" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            stopped=1
            break
        fi
        sleep 0.5
    done
    wait "$pid" 2>/dev/null || rc=$?
    for p in "${!seen[@]}"; do
        # only our own: the PID still runs mpich_bench or a hydra proxy
        if grep -qaE 'mpich_bench|hydra_pmi_proxy' "/proc/$p/cmdline" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    if [ "$stopped" -eq 1 ]; then
        echo "stopped ${FINALIZE_GRACE}s after its last row (did not leave MPI_Finalize)" \
            >"$out.stopped"
        return 0
    fi
    return "$rc"
}

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
    elif [ "$impl" = mpich ]; then
        if [ "$MPICH_OK" -ne 1 ]; then
            echo "$MPICH_NOTE" >"$out.missing"
            return 0
        fi
        cmd=(env "${MPICH_ENV[@]}" mpirun.mpich -n "$np" "$WORK/mpich_bench" "$test"
            "${extra[@]}" "${MPICH_ARGS[@]}")
    elif [ "$impl" = vader ]; then
        cmd=("${VADER_RUN[@]}" -n "$np" "$WORK/ompi_bench" "$test" "${extra[@]}")
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
    if [ "$impl" = mpich ]; then
        run_watched "$out" "$(last_size "$test")" "${cmd[@]}" || rc=$?
    else
        timeout -k 10 "$RUN_TIMEOUT" "${PRIO[@]}" "${cmd[@]}" \
            >"$out.txt" 2>"$out.err" </dev/null || rc=$?
    fi
    echo "$impl $test $np $round rc=$rc $((($(date +%s%N) - t0) / 1000000))ms" \
        "$([ -f "$out.stopped" ] && echo "stopped after its last row")" >>"$RAW/runs.log"
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
    echo "ompi_version=$OMPI_VERSION"
    echo "mpich=$MPICH"
    echo "mpich_ok=$MPICH_OK"
    echo "mpich_note=$MPICH_NOTE"
    echo "mpich_version=$MPICH_VERSION"
    echo "rustc_version=$(rustc --version 2>/dev/null || echo none)"
    echo "git_commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "quick=$QUICK"
    echo "nice=$NICE"
    echo "ours_ok=$OURS_OK"
    echo "ours_note=$OURS_NOTE"
    echo "mpirun_cmd=${MPIRUN[*]} -n N ompi_bench TEST"
    echo "vader=$VADER"
    echo "vader_cmd=mpirun --mca pml ob1 --mca btl vader,self --mca coll ^sm -n N ompi_bench TEST"
    echo "rmpirun_cmd=target/release/rmpirun --oversubscribe -n N target/release/osu_TEST"
    echo "mpich_cmd=${MPICH_ENV[*]} mpirun.mpich -n N mpich_bench TEST ${MPICH_ARGS[*]}"
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
    # rotate who goes first, so no side always runs on a machine another just warmed
    # (rmpi and Open MPI's two paths swap places every round)
    case $((r % 4)) in
    1) order=(rmpi vader ompi mpich) ;;
    2) order=(vader ompi mpich rmpi) ;;
    3) order=(ompi mpich rmpi vader) ;;
    0) order=(mpich rmpi vader ompi) ;;
    esac
    [ "$MPICH" -eq 1 ] || order=("${order[@]/mpich/}")
    [ "$VADER" -eq 1 ] || order=("${order[@]/vader/}")
    for t in "${P2P_TESTS[@]}"; do
        selected "$t" || continue
        for impl in "${order[@]}"; do
            case $impl in rmpi | ompi | vader) run_one "$impl" "$t" 2 "$r" ;; esac
        done
    done
    if selected nptcp || selected latency || selected bw; then run_nptcp "$r"; fi
    for np in "${COLL_RANKS[@]}"; do
        for t in "${COLL_TESTS[@]}"; do
            selected "$t" || continue
            for impl in "${order[@]}"; do
                if [ -n "$impl" ]; then run_one "$impl" "$t" "$np" "$r"; fi
            done
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
