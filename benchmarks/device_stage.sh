#!/usr/bin/env bash
# One call on the lent GPU machine: the end-to-end stage timings of BENCHMARKS.md.
#   bash benchmarks/device_stage.sh first   # GPU tests, the 0.5B stage, then the 7B stage until the deadline
#   bash benchmarks/device_stage.sh resume  # the 7B stage again: resumes where the last call stopped
#   bash benchmarks/device_stage.sh levers  # benchmarks/levers.py (7B decode and training), then the 0.5B stage
# The device allows 600 s per call; each call stops its stage at LIMIT seconds and the next resumes it.
set -u
LIMIT=${LIMIT:-570}
source benchmarks/device_setup.sh
if [ "${1:-first}" = levers ]; then
  python3 benchmarks/levers.py --out "$OUT/levers.json" 2>&1 | grep -v "^  warnings\|Warning"
  python3 benchmarks/stage.py --shape 0.5b --model-dir /tmp/m05 --run-dir /tmp/s05 \
    --deadline-s $((LIMIT - SECONDS)) --out "$OUT/stage-0.5b.json"
  cp /tmp/s05/bench_call*.log "$OUT/" 2>/dev/null
  exit 0
fi
if [ "${1:-first}" = first ]; then
  python3 -m pytest tests/test_fastdecode.py -q -m gpu 2>&1 | tail -3
  python3 benchmarks/stage.py --shape 0.5b --model-dir /tmp/m05 --run-dir /tmp/s05 --deadline-s 240 \
    --out "$OUT/stage-0.5b.json" || exit 1
  cp /tmp/s05/bench_call*.log "$OUT/" 2>/dev/null
fi
python3 benchmarks/stage.py --shape 7b --model-dir /tmp/m7b --run-dir /tmp/s7b \
  --deadline-s $((LIMIT - SECONDS)) --out "$OUT/stage-7b.json"
mkdir -p "$OUT/7b" && cp /tmp/s7b/bench_call*.log /tmp/s7b/bench_calls.json "$OUT/7b/" 2>/dev/null
df -h /tmp | tail -1
