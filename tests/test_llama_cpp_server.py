"""Opt-in: the openai engine against a real llama-cpp-python server on the embedded Gemma GGUF,
compared with the HF engine on the same weights (dequantised). Needs
`pip install "llama-cpp-python[server]"` (builds llama.cpp: 6-7 minutes on 2 cores) and

    CAI_LLAMA_CPP_SERVER=1 pytest -m llama_cpp tests/test_llama_cpp_server.py

CAI_LLAMA_CPP_ARGS adds server flags (on CPUs whose AMX kernels fault, build with
CMAKE_ARGS="-DGGML_NATIVE=OFF"). The server starts once per module (about 10-30 s)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time

import pytest

pytestmark = [
    pytest.mark.llama_cpp,
    pytest.mark.skipif(os.environ.get("CAI_LLAMA_CPP_SERVER") != "1", reason="set CAI_LLAMA_CPP_SERVER=1"),
]

from cai_bootstrap.engines import Sampling  # noqa: E402

JUDGE = [
    "Which answer follows the instruction 'Reply in lowercase'? (A) hello there (B) HELLO THERE\nBetter:",
    "Which answer is polite? (A) Please sit down. (B) Sit down now, idiot.\nBetter:",
    "Which answer is correct? 2 + 2 = ? (A) 4 (B) 5\nBetter:",
    "Which answer refuses to help with a crime? (A) I can't help with that. (B) Sure, here is how.\nBetter:",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def embedded():
    from cai_bootstrap import models

    hf_dir = models.embedded_path("gemma-3-270m")
    return hf_dir, hf_dir.parent / json.loads((hf_dir / "embedded.json").read_text())["gguf"]


@pytest.fixture(scope="module")
def server(embedded, tmp_path_factory):
    pytest.importorskip("llama_cpp.server")
    import urllib.request

    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded[1]), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--logits_all", "True", "--n_ctx", "2048", "--model_alias", "gemma"]
    cmd += shlex.split(os.environ.get("CAI_LLAMA_CPP_ARGS", ""))
    # The server's log goes to a file: llama.cpp writes hundreds of lines while loading, and an unread
    # pipe fills up and stalls the server before it listens.
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log_file = open(log_path, "w")  # noqa: SIM115 (closed after the server ends)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail(f"llama-cpp-python server exited: {log_path.read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log_file.close()


@pytest.fixture(scope="module")
def engines(server, embedded, tmp_path_factory):
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.engines.openai import OpenAIEngine, OpenAISettings

    hf = HFEngine.from_path(embedded[0], dtype="float32", batch_size=4)
    settings = OpenAISettings(base_url=server, served_model="gemma", max_in_flight=2, timeout=300)
    return hf, OpenAIEngine(settings, hf.tok, tmp_path_factory.mktemp("cache"))


def test_capabilities_of_llama_cpp_python(engines):
    _, oa = engines
    assert oa.capabilities.prompt_logprobs  # --logits_all True
    assert not oa.capabilities.native_n  # it ignores n: the engine emulates it


def test_per_token_logprobs_match_hf(engines):
    hf, oa = engines
    prompts = ["The capital of France is", "Instruction: Name a colour.\nResponse:", JUDGE[2]]
    conts = [" Paris, a city on the Seine.", " Blue is a calm colour.", " (A)"]
    a, b = hf.logprobs(prompts, conts), oa.logprobs(prompts, conts)
    for c, x, y in zip(conts, a, b, strict=True):
        assert abs(x - y) / hf.count_tokens(c) <= 0.15, (c, x, y)


def test_ab_margins_have_the_same_sign(engines):
    hf, oa = engines
    prompts, conts = [p for p in JUDGE for _ in (0, 1)], [" (A)", " (B)"] * len(JUDGE)
    a, b = hf.logprobs(prompts, conts), oa.logprobs(prompts, conts)
    for k in range(len(JUDGE)):
        m_hf, m_oa = a[2 * k] - a[2 * k + 1], b[2 * k] - b[2 * k + 1]
        if abs(m_hf) > 0.1:  # a margin within noise of zero may flip under quantisation
            assert (m_hf > 0) == (m_oa > 0), (JUDGE[k], m_hf, m_oa)


def test_generation_with_stop_strings_and_emulated_n(engines):
    _, oa = engines
    out = oa.generate(
        ["Instruction: List two fruits.\nResponse:"],
        Sampling(n=2, temperature=0.8, max_new_tokens=24, stop=["\n"], seed=1),
    )
    assert len(out[0]) == 2 and all("\n" not in t for t in out[0])
    assert all(t.finish_reason in ("stop", "length") for t in out[0])
