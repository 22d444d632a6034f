#!/usr/bin/env bash
# Self-test of the comparison tooling, against the real Open MPI and NPtcp (no rmpi needed):
#  1. ompi_bench builds with mpicc and every test prints an OSU table with the requested sizes
#     and positive values; wrong rank counts and bad options exit non-zero;
#     the same under Open MPI's shared memory (`--mca btl vader,self`);
#  2. scripts/plot.py turns those outputs (plus a real NPtcp run) into CSV, markdown and a
#     gnuplot script, with rmpi's cells marked pending and a column for each Open MPI path,
#     and splices a performance.md copy.
# Needs: openmpi-bin libopenmpi-dev netpipe-tcp python3 (gnuplot-nox optional). ~30 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d)
RX=""
cleanup() {
    if [ -n "$RX" ] && kill -0 "$RX" 2>/dev/null; then kill "$RX" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
pass() { echo "selftest: ok: $*"; }

MPIRUN=(timeout -k 5 60 mpirun --allow-run-as-root --oversubscribe --bind-to none
    --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo
    --mca btl_base_warn_component_unused 0)
# shellcheck disable=SC2054 # the commas are inside MCA values
VADER=(timeout -k 5 60 mpirun --allow-run-as-root --oversubscribe --bind-to none
    --mca pml ob1 --mca btl vader,self --mca btl_base_warn_component_unused 0)

mpicc -O2 -Wall -Wextra -Werror -o "$TMP/ompi_bench" "$ROOT/benches/compare/ompi_bench.c"
pass "ompi_bench compiles without warnings"

RAW=$TMP/raw
mkdir -p "$RAW/ompi" "$RAW/vader" "$RAW/rmpi" "$RAW/nptcp"

# check_table FILE TEST EXPECTED_SIZES...: header present, exactly these sizes, values > 0
check_table() {
    local file=$1 test=$2
    shift 2
    grep -q '^# Size' "$file" || fail "$test: no '# Size' header in $(cat "$file")"
    local got
    got=$(awk '!/^#/ && NF { if ($2 + 0 <= 0) bad = 1; printf "%s ", $1 }
        END { if (bad) print "BAD" }' "$file")
    [ "$got" = "$* " ] || fail "$test: sizes/values '$got', want '$* '"
}

for test in latency bw; do
    "${MPIRUN[@]}" -n 2 "$TMP/ompi_bench" "$test" -m 8:64 -i 20 >"$RAW/ompi/${test}_2_r1.txt"
    check_table "$RAW/ompi/${test}_2_r1.txt" "$test" 8 16 32 64
done
for np in 2 4; do
    for test in bcast reduce allreduce gather scatter allgather alltoall reduce_scatter scan; do
        "${MPIRUN[@]}" -n "$np" "$TMP/ompi_bench" "$test" -m 8:64 -i 20 -f \
            >"$RAW/ompi/${test}_${np}_r1.txt"
        check_table "$RAW/ompi/${test}_${np}_r1.txt" "$test -n $np" 8 16 32 64
        awk '!/^#/ && NF != 5 { exit 1 }' "$RAW/ompi/${test}_${np}_r1.txt" ||
            fail "$test -n $np: -f rows need size, avg, min, max, iterations"
    done
    "${MPIRUN[@]}" -n "$np" "$TMP/ompi_bench" barrier -i 20 >"$RAW/ompi/barrier_${np}_r1.txt"
    check_table "$RAW/ompi/barrier_${np}_r1.txt" "barrier -n $np" 0
done
pass "every test prints the requested sizes with positive values (2 and 4 ranks)"

for test in latency bw; do
    "${VADER[@]}" -n 2 "$TMP/ompi_bench" "$test" -m 8:64 -i 20 >"$RAW/vader/${test}_2_r1.txt"
    check_table "$RAW/vader/${test}_2_r1.txt" "vader $test" 8 16 32 64
done
for np in 2 4; do
    "${VADER[@]}" -n "$np" "$TMP/ompi_bench" allreduce -m 8:64 -i 20 \
        >"$RAW/vader/allreduce_${np}_r1.txt"
    check_table "$RAW/vader/allreduce_${np}_r1.txt" "vader allreduce -n $np" 8 16 32 64
done
pass "the shared-memory path (vader) runs latency, bw and allreduce at 2 and 4 ranks"

"${MPIRUN[@]}" -n 2 "$TMP/ompi_bench" latency -m 0:4 -x 0 -i 5 >"$TMP/zero.txt"
check_table "$TMP/zero.txt" "latency from 0" 0 1 2 4
pass "latency sweep starts at 0 B and goes 0, 1, 2, 4"

for bad in "latency:3:" "bw:1:" "latency:2:-m 64:8" "bcast:2:-m x" "bogus:2:" "bcast:2:-i 0"; do
    IFS=: read -r test np args <<<"$bad"
    # shellcheck disable=SC2086
    if "${MPIRUN[@]}" -n "$np" "$TMP/ompi_bench" "$test" $args >/dev/null 2>&1; then
        fail "ompi_bench $test -n $np $args should have failed"
    fi
done
pass "wrong rank counts and bad options exit non-zero"

port=$((20000 + (RANDOM % 20000)))
NPtcp -P "$port" -p 0 -u 4096 >"$TMP/rx.log" 2>&1 &
RX=$!
sleep 0.5
timeout -k 5 60 NPtcp -h 127.0.0.1 -P "$port" -p 0 -u 4096 -o "$RAW/nptcp/np_r1.out" \
    >"$TMP/tx.log" 2>&1 || fail "NPtcp transmitter: $(tail -n 3 "$TMP/tx.log")"
wait "$RX" || true
RX=""
echo "no rmpi binaries in this test" >"$RAW/rmpi/latency_2_r1.missing"
printf 'rounds=1\nrounds_requested=1\nquick=1\nours_ok=0\nours_note=selftest\n' >"$RAW/meta.env"

OUT=$TMP/out
DOC=$TMP/performance.md
{
    echo '# x'
    echo '<!-- BEGIN GENERATED RESULTS (scripts/compare.sh) -->'
    echo old
    echo '<!-- END GENERATED RESULTS -->'
    echo tail
} >"$DOC"
python3 "$ROOT/scripts/plot.py" --raw "$RAW" --out "$OUT" --doc "$DOC" >/dev/null
[ "$(find "$OUT" -name '*.csv' | wc -l)" -eq 22 ] || fail "want 22 CSV files, got $(ls "$OUT")"
head -n 1 "$OUT/latency_2.csv" | grep -q '^size_bytes,rmpi_median_us,.*nptcp_median_us' ||
    fail "latency CSV header: $(head -n 1 "$OUT/latency_2.csv")"
awk -F, 'NR > 1 && $1 == 8 { ok = ($6 + 0 > 0 && $10 + 0 > 0) } END { exit !ok }' \
    "$OUT/latency_2.csv" || fail "latency CSV lacks Open MPI and NPtcp medians at 8 B"
head -n 1 "$OUT/latency_2.csv" | grep -q ',vader_median_us,.*ratio_rmpi_over_vader$' ||
    fail "latency CSV lacks the vader columns: $(head -n 1 "$OUT/latency_2.csv")"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "vader_median_us") c = i }
    NR > 1 && $1 == 8 { ok = ($c + 0 > 0) } END { exit !ok }' "$OUT/allreduce_4.csv" ||
    fail "allreduce_4 CSV lacks the vader median at 8 B"
grep -q '| Open MPI shm (µs) |' "$OUT/results.md" || fail "results.md lacks the shm column"
grep -q "slower than Open MPI's shared memory" "$DOC" || fail "no shm summary in the doc"
head -n 1 "$OUT/allreduce_4.csv" | grep -q ',ompi_busbw_MBps,' || fail "allreduce CSV lacks busbw"
grep -q '| 8 B | pending |' "$OUT/results.md" || fail "rmpi cells are not marked pending"
grep -q 'old' "$DOC" && fail "performance.md block was not replaced"
grep -q '^tail$' "$DOC" || fail "text after the generated block was lost"
grep -q '### Headline' "$DOC" || fail "no headline table in the spliced block"
if command -v gnuplot >/dev/null; then
    (cd "$OUT" && gnuplot plots.gp) || fail "gnuplot failed on plots.gp"
    [ -s "$OUT/latency_2.png" ] && [ -s "$OUT/collectives_4.png" ] || fail "plots missing"
fi
grep -q "Open MPI (shared memory)" "$OUT/plots.gp" || fail "plots have no vader curve"
pass "plot.py writes CSV, results.md, plots and splices the doc; rmpi shown as pending"
echo "selftest: all passed"
