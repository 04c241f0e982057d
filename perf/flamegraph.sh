#!/usr/bin/env bash
# Profiles the e2e run (our server fed the standard load, 1,000 clients) and writes an SVG.
#
#   perf/flamegraph.sh [OUT.svg] [e2e flags...]      e.g. perf/flamegraph.sh /tmp/e2e.svg --seconds 10
#
# Uses Linux `perf` (with inferno to fold the stacks) when hardware counters work here
# (`perf stat -e instructions true`) and inferno is installed; otherwise the pprof sampler built
# into `e2e` behind the `flamegraph` feature of stackcore-perf (sampling at 997 Hz, every thread).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-perf/flamegraph.svg}
shift || true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

use_perf=no
if command -v perf >/dev/null && command -v inferno-collapse-perf >/dev/null \
   && ! perf stat -e instructions true 2>&1 | grep -q "not supported"; then
  use_perf=yes
fi

if [ "$use_perf" = yes ]; then
  nice -n 5 cargo build --release -p stackcore-perf --bin e2e
  perf record -F 997 -g -o /tmp/stackcore-e2e.perf.data "$CARGO_TARGET_DIR/release/e2e" "$@"
  perf script -i /tmp/stackcore-e2e.perf.data | inferno-collapse-perf | inferno-flamegraph > "$OUT"
else
  echo "flamegraph.sh: Linux perf has no hardware counters here (or inferno is missing); using pprof" >&2
  nice -n 5 cargo build --release -p stackcore-perf --features flamegraph --bin e2e
  "$CARGO_TARGET_DIR/release/e2e" "$@" --profile "$OUT"
fi
echo "flamegraph: $OUT"
