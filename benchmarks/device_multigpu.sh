#!/usr/bin/env bash
# Issue 19 on the two-GPU kind (nvidia-h200-x2). PREPARED, NOT YET RUN: no multi-GPU kind was lent
# when it was written. One step per device call (each fits the 10-minute limit); the machine must stay
# warm between calls, since /tmp and the carried files are kept only while it is held.
#
#   bash benchmarks/device_multigpu.sh tp-a        # 7B random model; SFT+DPO tokens/s, MFU: 1 GPU, DDP
#   bash benchmarks/device_multigpu.sh tp-b        # the same under FSDP and DeepSpeed ZeRO-2
#   bash benchmarks/device_multigpu.sh embedded    # join the carried GGUF pieces into the embedded model
#   bash benchmarks/device_multigpu.sh compare-a   # embedded model: LoRA SFT+DPO, 1 GPU (2 ways) and DDP
#   bash benchmarks/device_multigpu.sh compare-b   # the same under FSDP and ZeRO-2; gaps to 1 GPU
#   bash benchmarks/device_multigpu.sh generate    # greedy answers, 1 engine process per GPU vs 1 GPU
#
# Carried files. `.whl/` holds the wheels device_setup.sh installs (trl, datasets, pydantic,
# liger-kernel as in BENCHMARKS.md) plus deepspeed (an sdist: build its wheel here first with
# `pip wheel --no-deps deepspeed==0.19.8 -w .whl`, and the wheels of hjson, msgpack, ninja,
# py-cpuinfo, einops) and gguf (for the embedded model). The embedded model's GGUF is 242 MB, over
# the 64 MiB a call carries: split it here and carry one piece per call with the tp/embedded calls:
#   python3 -c "from cai_bootstrap.models import embedded_path; embedded_path('gemma-3-270m')"
#   mkdir -p .cache/gguf-parts && split -b 50m -d .cache/cai-bootstrap/gemma-3-270m/gemma-3-270m-q4_k_m.gguf .cache/gguf-parts/part
# then carry ".cache/gguf-parts/part00" with tp-a, part01 with tp-b, and so on (files, never the
# folder: carrying a folder replaces what earlier calls left in it).
set -u
OUT=${OUT:-/tmp/out}
source benchmarks/device_setup.sh
python3 -c "import deepspeed" || exit 1
export PYTHONPATH=$PYTHONPATH:benchmarks
M7B=/tmp/m7b
EMB=/tmp/cai-cache/gemma-3-270m/hf
MG="python3 benchmarks/multigpu.py"
nvidia-smi --query-gpu=index,name,memory.total --format=csv | tee "$OUT/gpus.csv"

tp() {  # $1: label (1gpu or a configs/accelerate name)
  local args=(throughput --model $M7B --shape 7b --label "$1" --work "/tmp/tp-$1" --out "$OUT/tp-$1.json")
  if [ "$1" = 1gpu ]; then
    CUDA_VISIBLE_DEVICES=0 $MG "${args[@]}" 2>&1 | tail -8
  else
    python3 -m accelerate.commands.launch --config_file "configs/accelerate/$1.yaml" --num_processes 2 \
      --mixed_precision bf16 benchmarks/multigpu.py "${args[@]}" 2>&1 | tail -8
  fi
}

case "${1:-}" in
  tp-a)
    python3 benchmarks/random_model.py --shape 7b --out $M7B --device cuda | tail -2
    tp 1gpu; tp ddp ;;
  tp-b)
    tp fsdp; tp deepspeed_zero2 ;;
  embedded)
    ls -la .cache/gguf-parts/
    mkdir -p "$(dirname $EMB)"
    cat .cache/gguf-parts/part* > "$(dirname $EMB)/gemma-3-270m-q4_k_m.gguf"
    echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  $(dirname $EMB)/gemma-3-270m-q4_k_m.gguf" \
      | sha256sum -c || exit 1
    python3 -c "from pathlib import Path; from cai_bootstrap.models import _dequantise_to_safetensors as d; \
d(Path('$(dirname $EMB)/gemma-3-270m-q4_k_m.gguf'), Path('$EMB'))" && ls -la $EMB ;;
  compare-a)
    $MG compare --model $EMB --gpus 2 --configs 1gpu,1gpu_accum,ddp --work /tmp/mg --out /tmp/mg/compare.json \
      2>&1 | tail -40; cp /tmp/mg/compare.json "$OUT/" ;;
  compare-b)
    $MG compare --model $EMB --gpus 2 --configs fsdp,deepspeed_zero2 --work /tmp/mg --out /tmp/mg/compare.json \
      2>&1 | tail -40; cp /tmp/mg/compare.json "$OUT/" ;;
  generate)
    $MG generate --model $EMB --gpus 2 --items 512 --batch 64 --new 128 --dtype bfloat16 --work /tmp/gen-bf16 \
      --out "$OUT/generate-bf16.json" 2>&1 | tail -12
    $MG generate --model $EMB --gpus 2 --items 512 --batch 64 --new 128 --dtype float32 --work /tmp/gen-fp32 \
      --out "$OUT/generate-fp32.json" 2>&1 | tail -12 ;;
  *) echo "usage: $0 tp-a|tp-b|embedded|compare-a|compare-b|generate"; exit 2 ;;
esac
