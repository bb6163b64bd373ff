#!/usr/bin/env bash
# Per-document scan overhead of tarn over a warm clamd.
#
#   scripts/bench-scan.sh [N] [SIZE]      N scans (default 500) of a SIZE-byte clean text (default 102400)
#
# Starts the test clamd (scripts/clamd.sh start) unless TARN_CLAMD / TARN_CLAMD_UNIX are set, then:
# 1. the `scan_overhead` measurement in lake-functions/tests/scan.rs: ClamdScanner (session pool and one
#    connection per scan, TCP and unix socket) and ScanStage::process against a raw blocking client that
#    sends the pre-framed stream in one write (clamd's own time plus the least protocol cost), taking turns
#    scan by scan; and a throughput run with 8 concurrent scans;
# 2. clamdscan --stream on the same file, one process per scan, for comparison.
# The test build is the dev profile (unoptimized): numbers are an upper bound.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-500}"
SIZE="${2:-102400}"
cd "$ROOT"

if [ -z "${TARN_CLAMD:-}" ] || [ -z "${TARN_CLAMD_UNIX:-}" ]; then
    scripts/clamd.sh start >/dev/null
    export TARN_CLAMD="${TARN_CLAMD:-$(scripts/clamd.sh addr tcp)}"
    export TARN_CLAMD_UNIX="${TARN_CLAMD_UNIX:-$(scripts/clamd.sh addr unix)}"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

TARN_BENCH_N="$N" TARN_BENCH_SIZE="$SIZE" cargo test -q -p tarn-lake --test scan -- --ignored --nocapture --exact scan_overhead 2>&1 |
    grep -vE '^(running|test |\.+$|$)'

conf="${TARN_CLAMD_DIR:-/tmp/tarn-clamd}/clamd.conf"
if command -v clamdscan >/dev/null 2>&1 && [ -f "$conf" ]; then
    file="$(mktemp)"
    trap 'rm -f "$file"' EXIT
    python3 - "$file" "$SIZE" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
out, i = bytearray(), 0
while len(out) < size:
    out += f"line {i}: the quick brown fox jumps over the lazy dog {i * 7919 % 1000}\n".encode()
    i += 1
open(path, "wb").write(out[:size])
PY
    runs=$((N < 100 ? N : 100))
    clamdscan --config-file="$conf" --stream --no-summary "$file" >/dev/null # warm
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do
        clamdscan --config-file="$conf" --stream --no-summary "$file" >/dev/null
    done
    end=$(date +%s%N)
    awk -v ns=$((end - start)) -v n="$runs" 'BEGIN { printf "clamdscan --stream (a process per scan, %d runs): %.3f ms per scan\n", n, ns / n / 1e6 }'
fi
