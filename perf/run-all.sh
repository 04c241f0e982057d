#!/usr/bin/env bash
# The whole lab in one command: builds (release) and runs the fan-out and queue benches briefly,
# e2e (fed, whole path, saturation), the reference peer (same load, same loadgen), and the memory
# harness for both servers; then prints the markdown table of ours/reference ratios.
#
#   perf/run-all.sh                     # standard: 10k updates/s, 1,000 clients, 15 s, 10,000 conns
#   RATE=5000 SECS=10 CLIENTS=500 CONNS=2000 LIGHT_RATE=1000 LIGHT_CLIENTS=100 SKIP_BENCH=1 perf/run-all.sh
#
# Outputs go to perf/out/<UTC time>/ (git-ignored), one file per harness; the table is printed
# and written to table.md there. A harness that fails leaves a dash in the table, not a stop.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
REF_TARGET=${REF_TARGET:-/work/main-ref-target}
RATE=${RATE:-10000}
SECS=${SECS:-15}
CLIENTS=${CLIENTS:-1000}
CONNS=${CONNS:-10000}
LIGHT_RATE=${LIGHT_RATE:-1000}
LIGHT_CLIENTS=${LIGHT_CLIENTS:-100}
OUT=${OUT:-perf/out/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
echo "fd limit: $(ulimit -n)" | tee "$OUT/machine.txt"
{ echo "nproc: $(nproc)"; lscpu | head -20; git log --oneline -1; } >> "$OUT/machine.txt"

BIN=$CARGO_TARGET_DIR/release
REF_BIN=$REF_TARGET/release/stackcore-reference-peer
RUN=(--rate "$RATE" --seconds "$SECS" --clients "$CLIENTS")

step() { echo; echo "== $*"; }

step build
nice -n 5 cargo build --release -p stackcore-perf --bins || exit 1
(cd perf/reference && CARGO_TARGET_DIR=$REF_TARGET nice -n 10 cargo build --release) || echo "reference peer did not build"

if [ -z "${SKIP_BENCH:-}" ]; then
  step benches
  cargo bench -p stackcore --bench fanout -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$OUT/bench-fanout.txt"
  cargo bench -p stackcore --bench queues -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$OUT/bench-queues.txt"
fi

step "ours, fed the same way"
"$BIN/e2e" --mode fed "${RUN[@]}" 2>&1 | tee "$OUT/ours-fed.txt"
step "ours, whole path (mock Geyser → gRPC → ingest)"
"$BIN/e2e" --mode geyser "${RUN[@]}" 2>&1 | tee "$OUT/ours-geyser.txt"
step "reference, fed the same way"
[ -x "$REF_BIN" ] && "$REF_BIN" "${RUN[@]}" 2>&1 | tee "$OUT/reference.txt"
step "light load ($LIGHT_RATE/s, $LIGHT_CLIENTS clients): latency when neither server is saturated"
"$BIN/e2e" --mode fed --rate "$LIGHT_RATE" --seconds "$SECS" --clients "$LIGHT_CLIENTS" 2>&1 | tee "$OUT/ours-light.txt"
[ -x "$REF_BIN" ] && "$REF_BIN" --rate "$LIGHT_RATE" --seconds "$SECS" --clients "$LIGHT_CLIENTS" 2>&1 | tee "$OUT/reference-light.txt"
step "saturation (feed as fast as each server takes it)"
"$BIN/e2e" --mode fed --rate 0 --seconds "$SECS" --clients "$CLIENTS" 2>&1 | tee "$OUT/ours-saturated.txt"
[ -x "$REF_BIN" ] && "$REF_BIN" --rate 0 --seconds "$SECS" --clients "$CLIENTS" 2>&1 | tee "$OUT/reference-saturated.txt"
step "memory at $CONNS connections"
"$BIN/memory" --server ours --conns "$CONNS" --rate "$RATE" 2>&1 | tee "$OUT/ours-memory.txt"
[ -x "$REF_BIN" ] && "$BIN/memory" --server reference --reference-bin "$REF_BIN" --conns "$CONNS" --rate "$RATE" 2>&1 | tee "$OUT/reference-memory.txt"

step "ours / reference (same run, $(nproc) cores, rate $RATE/s, $CLIENTS clients, $SECS s)"
"$BIN/compare" "$OUT" | tee "$OUT/table.md"
echo "outputs: $ROOT/$OUT"
