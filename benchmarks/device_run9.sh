#!/usr/bin/env bash
# Run 9, on the two-GPU kind: the 7B stage with every speed setting on (GPU 0) beside
# benchmarks/compile_cost.py (GPU 1). The device allows 600 s per call, so the stage takes two calls:
#   bash benchmarks/device_run9.sh first    # compile_cost.py on GPU 1; the stage until the deadline on GPU 0
#   bash benchmarks/device_run9.sh resume   # the stage again (resumes); EXTRA, if set, runs on GPU 1
set -u
LIMIT=${LIMIT:-570}
OUT=${OUT:-/tmp/out}
LEVERS=(--set model.compile_decode=true --set stages.0.sft.liger_kernels=true
        --set stages.0.dpo.liger_kernels=true --set stages.0.lora.dropout=0)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=src:/tmp/site:tests PYTHONUNBUFFERED=1
python3 -c "import cai_bootstrap.cli, cai_bootstrap.pipeline, trl, datasets, liger_kernel" || exit 1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.limit --format=csv | tee "$OUT/gpu.csv"
if [ "${1:-first}" = first ]; then
  CUDA_VISIBLE_DEVICES=1 python3 benchmarks/compile_cost.py --model 7b --out "$OUT/compile_cost.json" \
    > "$OUT/compile_cost.log" 2>&1 &
elif [ -n "${EXTRA:-}" ]; then
  CUDA_VISIBLE_DEVICES=1 bash -c "$EXTRA" > "$OUT/extra.log" 2>&1 &
fi
CUDA_VISIBLE_DEVICES=0 python3 benchmarks/stage.py --shape 7b --model-dir /tmp/m7b --run-dir /tmp/s7b \
  --deadline-s $((LIMIT - SECONDS)) --out "$OUT/stage-7b.json" "${LEVERS[@]}"
mkdir -p "$OUT/7b" && cp /tmp/s7b/bench_call*.log /tmp/s7b/bench_calls.json "$OUT/7b/" 2>/dev/null
wait
grep -v "Warning\|warnings.warn" "$OUT/compile_cost.log" 2>/dev/null | tail -15
tail -5 "$OUT/extra.log" 2>/dev/null
df -h /tmp | tail -1
