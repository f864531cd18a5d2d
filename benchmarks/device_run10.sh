#!/usr/bin/env bash
# Run 10, one call on the two-GPU kind, with model.liger_kernels (Liger's kernels in generation and
# scoring) and the training levers on:
#   GPU 0: the 7B stage until the deadline (its generation steps finish inside one call);
#   GPU 1: the GPU tests, then the whole 0.5B stage.
#   bash benchmarks/device_run10.sh
set -u
LIMIT=${LIMIT:-560}
LEVERS=(--set model.liger_kernels=true --set stages.0.sft.liger_kernels=true
        --set stages.0.dpo.liger_kernels=true --set stages.0.lora.dropout=0)
source benchmarks/device_setup.sh
(
  export CUDA_VISIBLE_DEVICES=1
  python3 -m pytest tests/test_fastdecode.py -q -m gpu -p no:cacheprovider 2>&1 | tail -3
  python3 benchmarks/stage.py --shape 0.5b --model-dir /tmp/m05 --run-dir /tmp/s05 \
    --deadline-s $((LIMIT - SECONDS)) --out "$OUT/stage-0.5b.json" "${LEVERS[@]}" 2>&1 | tail -25
  mkdir -p "$OUT/05b" && cp /tmp/s05/bench_call*.log "$OUT/05b/" 2>/dev/null
) > "$OUT/gpu1.log" 2>&1 &
CUDA_VISIBLE_DEVICES=0 python3 benchmarks/stage.py --shape 7b --model-dir /tmp/m7b --run-dir /tmp/s7b \
  --deadline-s $((LIMIT - SECONDS)) --out "$OUT/stage-7b.json" "${LEVERS[@]}" 2>&1 | tail -22
mkdir -p "$OUT/7b" && cp /tmp/s7b/bench_call*.log /tmp/s7b/bench_calls.json "$OUT/7b/" 2>/dev/null
wait
cat "$OUT/gpu1.log"
