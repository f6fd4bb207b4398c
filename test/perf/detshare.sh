#!/usr/bin/env bash
# detshare.sh BIN UPSTREAM OUTDIR [CLIENTS]: the detectors' share of the
# recording path's CPU (docs/PERFORMANCE.md, "The detectors' share of the
# recording path"). Runs `BIN bench proxy` on the proxy path with a CPU
# profile per pgbench run, samples the CPU of the processes on the path
# (pathcpu.py), then counts the detectors' samples in each run's profile
# (detshare.py) and sets them against the path's CPU over the same span.
#   test/perf/detshare.sh ./auditledger postgres://postgres@127.0.0.1:5499/bench /tmp/share 1,16
set -euo pipefail
BIN=$1 UP=$2 OUT=$3 CL=${4:-1,16}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
"$BIN" bench proxy --upstream "$UP" --clients "$CL" --paths proxy --sync interval \
  --durability before-response --duration 20s --cpuprofile "$OUT/prof" > "$OUT/bench.txt" 2>&1 &
pid=$!
python3 "$here/pathcpu.py" "$pid" "$OUT/path.txt" &
wait "$pid"
uptime >> "$OUT/bench.txt"
python3 "$here/detshare.py" "$BIN" "$OUT"
