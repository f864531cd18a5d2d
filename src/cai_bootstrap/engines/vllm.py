"""vLLM as an engine (optional extra `[vllm]`, CUDA only): n samples, stop strings, per-prompt seeds
and finish reasons in one call; scoring by token ids; tensor parallel inside a process and data
parallel over processes.

Why processes: deleting an `LLM` does not reliably free its GPU memory (vllm#21073), so each model
lives in its own worker process and `close()` ends them (one model at a time, as engines/holder.py
wants); and offline data parallelism for dense models fails at start since vLLM 0.14 (PR #30739),
so `data_parallel_size` starts that many independent workers, each pinned to its own group of
`tensor_parallel_size` GPUs through CUDA_VISIBLE_DEVICES, and shards every call's items over them.

Inputs are token ids ([bos] + ids(prompt), as hf.py builds them), never text: vLLM would add its
own special tokens. Scoring sends [bos] + prompt + continuation with prompt_logprobs=0 and sums the
continuation's entries; prompt logprobs compute full-vocabulary logits per prompt position and skip
the prefix cache (vllm#5907), so scoring calls are cut into batches of at most `score_token_budget`
tokens. The worker loop and the batching are plain functions, unit-tested with a fake `LLM`.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import StepFailed, UserError
from ..log import log
from . import (
    Capabilities,
    Completion,
    Sampling,
    Scored,
    TokenizerMethods,
    continuation_ids,
    cut_at_stop,
    prompt_ids,
)


class VLLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per worker process (tensor parallel)")
    data_parallel_size: int = Field(
        1, ge=1, description="worker processes, each on its own tensor_parallel_size GPUs; items are sharded"
    )
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="share of each GPU vLLM may take")
    max_model_len: int | None = Field(None, ge=16, description="context length (null: the model's)")
    score_token_budget: int = Field(
        16384,
        ge=64,
        description="prompt tokens per scoring call (prompt logprobs hold full-vocabulary logits)",
    )
    enforce_eager: bool = Field(False, description="no CUDA graphs (faster start, slower decode)")


def require_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise UserError(
            f"model.engine is vllm but vLLM cannot be imported ({e})",
            'install the extra: pip install "cai-bootstrap[vllm]" (Linux + CUDA), or set model.engine: hf',
        ) from e


def gpu_groups(tp: int, dp: int, visible: str | None, count: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker: dp groups of tp consecutive GPUs out of those this
    process sees (its own CUDA_VISIBLE_DEVICES if set)."""
    ids = [g.strip() for g in visible.split(",") if g.strip()] if visible else [str(g) for g in range(count)]
    if tp * dp > len(ids):
        raise UserError(
            f"model.vllm needs {tp} x {dp} = {tp * dp} GPUs, {len(ids)} visible",
            "lower vllm.tensor_parallel_size or vllm.data_parallel_size",
        )
    return [",".join(ids[w * tp : (w + 1) * tp]) for w in range(dp)]


def _seed(base: int, i: int) -> int:
    return (base * 1_000_003 + i * 10_007) % 2**31


def batches_by_tokens(lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive index groups whose lengths sum to at most `budget` (a longer item goes alone)."""
    out: list[list[int]] = []
    total = budget + 1
    for i, n in enumerate(lengths):
        if total + n > budget:
            out.append([])
            total = 0
        out[-1].append(i)
        total += n
    return out


def generate_shard(llm, params_cls, items: list[tuple[int, list[int]]], sampling: dict) -> list:
    """(global index, prompt ids) -> per item, n (text, finish reason). The seed depends on the
    global index only, so the answers do not depend on how items were sharded."""
    s = Sampling(**sampling)
    n = 1 if s.temperature == 0.0 else s.n  # greedy: one answer, repeated (older vLLM refuses n > 1)
    params = [
        params_cls(
            n=n,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_new_tokens,
            stop=list(s.stop) or None,
            seed=_seed(s.seed, i),
        )
        for i, _ in items
    ]
    outs = llm.generate([{"prompt_token_ids": ids} for _, ids in items], params, use_tqdm=False)
    result = []
    for out in outs:
        answers = sorted(out.outputs, key=lambda c: c.index)
        pairs = [(c.text, "length" if c.finish_reason == "length" else "stop") for c in answers]
        result.append(pairs * (s.n // n))
    return result


def score_shard(llm, params_cls, rows: list[tuple[list[int], list[int]]], budget: int) -> list[float]:
    """Sum of the continuation's prompt logprobs for each (prompt ids, continuation ids)."""
    params = params_cls(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
    scores: list[float] = []
    for batch in batches_by_tokens([len(p) + len(c) for p, c in rows], budget):
        seqs = [rows[k][0] + rows[k][1] for k in batch]
        outs = llm.generate([{"prompt_token_ids": ids} for ids in seqs], params, use_tqdm=False)
        for k, ids, out in zip(batch, seqs, outs, strict=True):
            start = len(rows[k][0])
            # entry j is {token id: Logprob} for prompt position j (None at 0); prompt_logprobs=0
            # still includes the prompt's own token.
            scores.append(sum(out.prompt_logprobs[j][ids[j]].logprob for j in range(start, len(ids))))
    return scores


def serve(conn, make_llm) -> None:
    """A worker's loop: build the LLM, then answer ("generate" | "score", args) until "close"."""
    try:
        llm, params_cls = make_llm()
    except Exception as e:  # the parent turns this into one clear line
        conn.send(("error", f"vLLM failed to start: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    ops = {"generate": generate_shard, "score": score_shard}
    while True:
        try:
            op, args = conn.recv()
        except EOFError:  # the parent is gone: exit, which frees the GPUs
            return
        if op == "close":
            return
        try:
            conn.send(("ok", ops[op](llm, params_cls, *args)))
        except Exception as e:
            conn.send(("error", f"{op}: {type(e).__name__}: {e}"))


class _MakeLLM:
    """Picklable: runs in the spawned worker, after CUDA_VISIBLE_DEVICES is set to its GPUs."""

    def __init__(self, path: Path, settings: VLLMSettings, dtype: str, gpus: str):
        self.path, self.settings, self.dtype, self.gpus = str(path), settings, dtype, gpus

    def __call__(self):
        os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus
        from vllm import LLM, SamplingParams

        s = self.settings
        llm = LLM(
            model=self.path,
            dtype=self.dtype,
            tensor_parallel_size=s.tensor_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            max_model_len=s.max_model_len,
            enforce_eager=s.enforce_eager,
            seed=0,
        )
        return llm, SamplingParams


class VLLMEngine(TokenizerMethods):
    """Items sharded over worker connections (processes in use; threads in the tests)."""

    capabilities = Capabilities(prompt_logprobs=True, native_n=True, token_ids=True)

    def __init__(self, tokenizer, conns: list, score_token_budget: int, procs: list | None = None):
        self.tok, self.conns, self.budget, self.procs = tokenizer, conns, score_token_budget, procs or []
        for c in conns:
            self._expect(c, "ready")

    @classmethod
    def start(cls, path: Path, settings: VLLMSettings, dtype: str) -> VLLMEngine:
        """One spawned worker per GPU group (gpu_groups); each loads the model once."""
        require_vllm()
        import torch
        from transformers import AutoTokenizer

        groups = gpu_groups(
            settings.tensor_parallel_size,
            settings.data_parallel_size,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            torch.cuda.device_count(),
        )
        ctx = mp.get_context("spawn")  # CUDA cannot be re-initialised in a forked child
        conns, procs = [], []
        for gpus in groups:
            parent, child = ctx.Pipe()
            # Not a daemon: vLLM starts processes of its own, which a daemonic process may not.
            p = ctx.Process(target=serve, args=(child, _MakeLLM(path, settings, dtype, gpus)))
            p.start()
            conns.append(parent)
            procs.append(p)
        log.info("vllm: %d worker(s) on GPUs %s for %s", len(groups), groups, path)
        engine = cls(AutoTokenizer.from_pretrained(path), conns, settings.score_token_budget, procs)
        atexit.register(engine.close)  # a crash elsewhere must not leave workers holding GPUs
        return engine

    @staticmethod
    def _expect(conn, want: str):
        try:
            status, value = conn.recv()
        except EOFError as e:
            raise StepFailed("a vLLM worker exited", "see its log above (CUDA memory, model path)") from e
        if status != want:
            raise StepFailed(f"vLLM worker: {value}")
        return value

    def _map(self, op: str, items: list, *extra) -> list:
        """Contiguous shards, one per worker, sent before any reply is awaited; results in item order."""
        k = len(self.conns)
        size = -(-len(items) // k) if items else 0
        shards = [items[w * size : (w + 1) * size] for w in range(k)]
        busy = [(c, s) for c, s in zip(self.conns, shards, strict=True) if s]
        for c, s in busy:
            c.send((op, (s, *extra)))
        return [x for c, _ in busy for x in self._expect(c, "ok")]

    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[Completion]]:
        items = [(i, self.input_ids_for(p)) for i, p in enumerate(prompts)]
        out = self._map("generate", items, sampling.model_dump())
        return [[Completion(cut_at_stop(t, sampling.stop), f) for t, f in answers] for answers in out]

    def logprobs(self, prompts: list[Scored], continuations: list[Scored]) -> list[float]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        rows = [
            (prompt_ids(self.tok, p), continuation_ids(self.tok, c))
            for p, c in zip(prompts, continuations, strict=True)
        ]
        return self._map("score", rows, self.budget)

    def close(self) -> None:
        """Ends the workers: the only reliable way to give their GPU memory back."""
        for c in self.conns:
            try:
                c.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
        self.conns, self.procs = [], []
