"""The vLLM engine's own code (worker loop, sharding over workers, token-budgeted scoring batches,
id bookkeeping) with a fake `LLM` backed by the tiny HF model. vLLM itself needs CUDA and is not
installed here: the real engine runs only on a GPU machine."""

from __future__ import annotations

import multiprocessing as mp
import threading
from dataclasses import dataclass

import pytest
import torch

from cai_bootstrap.engines import Sampling
from cai_bootstrap.engines.vllm import VLLMEngine, batches_by_tokens, gpu_groups, require_vllm, serve
from cai_bootstrap.errors import StepFailed, UserError
from tiny import tiny_canary

PROMPTS = ["Instruction: Write a note.\nResponse:", "The sea", "List three fruits. Response: apple", "Answer"]


@dataclass
class FakeParams:
    """vLLM's SamplingParams fields that the engine sets (names as documented); a wrong name fails."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    stop: list[str] | None = None
    seed: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Out:
    index: int
    text: str
    finish_reason: str


@dataclass
class _Request:
    outputs: list
    prompt_logprobs: list | None = None


class FakeLLM:
    """LLM.generate(prompts, params, use_tqdm) over {"prompt_token_ids": ...} prompts. Workers are
    threads here and torch's RNG is global: one request samples at a time, seeded per request as
    vLLM seeds each request's own generator."""

    lock = threading.Lock()

    def __init__(self, hf):
        self.hf, self.calls = hf, []

    def generate(self, prompts, params, use_tqdm=True):
        params = params if isinstance(params, list) else [params] * len(prompts)
        self.calls.append(len(prompts))
        return [self._one(p["prompt_token_ids"], sp) for p, sp in zip(prompts, params, strict=True)]

    @torch.inference_mode()
    def _one(self, ids, sp):
        if sp.prompt_logprobs is not None:
            logp = torch.log_softmax(self.hf.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            return _Request(
                [], [None] + [{ids[j]: _Logprob(float(logp[j - 1, ids[j]]))} for j in range(1, len(ids))]
            )
        s = Sampling(
            n=1, temperature=sp.temperature, top_p=sp.top_p, max_new_tokens=sp.max_tokens, stop=sp.stop or []
        )
        with self.lock:
            torch.manual_seed(sp.seed)
            texts = self.hf._generate_batch([ids] * sp.n, s)
        return _Request([_Out(k, str(t), t.finish_reason) for k, t in enumerate(texts)])


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    from cai_bootstrap.engines.hf import HFEngine

    return HFEngine.from_path(tiny_model_dir, batch_size=4, canary=tiny_canary())


def _engine(hf, workers: int, budget: int = 64, make=None):
    conns = []
    for _ in range(workers):
        parent, child = mp.Pipe()
        target = make or (lambda: (FakeLLM(hf), FakeParams))
        threading.Thread(target=serve, args=(child, target), daemon=True).start()
        conns.append(parent)
    return VLLMEngine(hf.tok, conns, budget)


def test_batches_respect_the_token_budget():
    assert batches_by_tokens([5, 5, 5, 20, 1], 10) == [[0, 1], [2], [3], [4]]
    assert batches_by_tokens([], 10) == []


def test_gpu_groups_split_the_visible_gpus():
    assert gpu_groups(2, 2, None, 4) == ["0,1", "2,3"]
    assert gpu_groups(1, 2, "3,5,7", 0) == ["3", "5"]
    with pytest.raises(UserError, match="4 GPUs, 2 visible"):
        gpu_groups(2, 2, None, 2)


def test_scores_by_ids_match_the_hf_engine_over_two_workers(hf):
    prompts, conts = PROMPTS * 2, [" apple", " B", " the sea is blue", " A"] * 2
    engine = _engine(hf, 2, budget=24)
    try:
        assert engine.logprobs(prompts, conts) == pytest.approx(hf.logprobs(prompts, conts), abs=1e-4)
    finally:
        engine.close()


def test_generation_is_ordered_and_independent_of_the_worker_count(hf):
    s = Sampling(n=2, temperature=1.0, max_new_tokens=6, seed=4)
    one, two = _engine(hf, 1), _engine(hf, 3)
    try:
        a = one.generate(PROMPTS, s)
        assert two.generate(PROMPTS, s) == a
        assert [len(r) for r in a] == [2] * 4 and all(
            c.finish_reason in ("stop", "length") for r in a for c in r
        )
        stop = a[0][0][1:3]
        cut = one.generate(PROMPTS[:1], s.model_copy(update={"stop": [stop]}))[0][0]
        assert stop not in cut and cut.finish_reason == "stop"
        greedy = one.generate(PROMPTS[:1], Sampling(n=3, max_new_tokens=4))[0]
        assert len(greedy) == 3 and len(set(greedy)) == 1 and greedy[0].finish_reason == "length"
    finally:
        one.close()
        two.close()


def test_a_worker_that_fails_to_start_stops_with_its_cause(hf):
    def broken():
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(StepFailed, match="CUDA out of memory"):
        _engine(hf, 1, make=broken)


def test_missing_vllm_is_a_user_error_naming_the_extra():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError) as e:
            require_vllm()
        assert "cai-bootstrap[vllm]" in e.value.one_line()
    else:
        pytest.skip("vllm is installed")
