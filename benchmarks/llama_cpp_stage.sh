#!/bin/bash
# Issue 18's end-to-end check on CPU: one stage-1 round with model.engine: openai against a real
# llama-cpp-python server on the embedded Gemma GGUF, and the same round with model.engine: hf;
# then compare what the two runs wrote (files, stage.json keys, report headings).
#   pip install "llama-cpp-python[server]"   (CMAKE_ARGS=-DGGML_NATIVE=OFF on CPUs with AMX)
#   benchmarks/llama_cpp_stage.sh [OUT_DIR]
# Tiny counts, judge and safety evaluation off: llama-cpp-python's server takes ~0.3 s per prompt
# token to return prompt logprobs of a 262k-token vocabulary (it sorts the whole vocabulary in Python
# per token), so only self-instruct's critic scores through the server here.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/llama-stage}
PORT=${PORT:-8765}
# The embedded GGUF as assembled on first use (cai-bootstrap models shows the cache folder).
GGUF=${GGUF:-${CAI_BOOTSTRAP_CACHE:-.cache/cai-bootstrap}/gemma-3-270m/gemma-3-270m-q4_k_m.gguf}
S=stages.0
SETS=(--set $S.instructions.n_train=16 --set $S.instructions.n_heldout=6 --set $S.instructions.max_constraints=1
  --set "$S.instructions.constraint_types=[cai:max_words, cai:no_digits, cai:single_paragraph]"
  --set $S.instructions.self_instruct.n_tasks=2 --set $S.instructions.self_instruct.max_rounds=1
  --set $S.instructions.self_instruct.prompts_per_round=1 --set $S.instructions.self_instruct.samples_per_prompt=1
  --set $S.instructions.self_instruct.min_accepted=0
  --set $S.responses.k=4 --set $S.responses.max_new_tokens=32 --set $S.responses.max_truncated_fraction=1.0
  --set $S.critique.max_items=2 --set $S.judge.enabled=false --set $S.eval.safety.enabled=false
  --set $S.pairs.drop_truncated=false --set $S.pairs.min_pairs=0 --set $S.sft.min_examples=1
  --set $S.sft.epochs=1 --set $S.dpo.epochs=1 --set $S.dpo.max_length=320 --set $S.eval.max_new_tokens=32
  --set stages.0.max_rounds=1)
rm -rf "$OUT"; mkdir -p "$OUT"
echo "hf run: $(date -u +%T)"
/usr/bin/time -f "hf %e s" .venv/bin/cai-bootstrap run --quiet --set run.run_dir="$OUT/hf" "${SETS[@]}"
echo "hf exit $?"
.venv/bin/python -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port $PORT --logits_all True \
  --n_ctx 2048 --model_alias gemma > "$OUT/llama-server.log" 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null' EXIT
for i in $(seq 1 120); do curl -s http://127.0.0.1:$PORT/v1/models > /dev/null && break; sleep 1; done
echo "openai run: $(date -u +%T)"
/usr/bin/time -f "openai %e s" .venv/bin/cai-bootstrap run --quiet --set run.run_dir="$OUT/openai" \
  --set model.engine=openai --set model.openai.base_url=http://127.0.0.1:$PORT/v1 \
  --set model.openai.served_model=gemma --set model.openai.max_in_flight=1 "${SETS[@]}"
echo "openai exit $?"
.venv/bin/python benchmarks/compare_runs.py "$OUT/hf" "$OUT/openai"
