"""Prefill and scoring throughput: a plain forward and HFEngine.logprobs over prompt+continuation."""

from __future__ import annotations

import torch
from shapes import Counts, ids_to_text, random_ids
from timer import median, repeat


def bench_forward(model, c: Counts, batch: int, seq: int, peak: float) -> dict:
    ids = random_ids(batch, seq, seed=7).cuda()
    mask = torch.ones_like(ids)

    def fwd():
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask).logits[:, -1, :1].clone()

    times, _ = repeat(fwd, warmup=2, reps=5)
    t = median(times)
    flops = c.forward_flops(batch, seq)
    return {
        "batch": batch,
        "seq": seq,
        "times": times,
        "tokens_per_s": batch * seq / t,
        "mfu": flops / t / peak,
    }


def _reference_logprobs(model, ids: torch.Tensor, n_cont: int) -> list[float]:
    """Sum of log p(continuation) from one plain forward per row, in float32."""
    out = []
    with torch.inference_mode():
        for row in ids:
            logits = model(input_ids=row[None]).logits.float()
            logp = torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, row[1:, None])[:, 0]
            out.append(float(logp[-n_cont:].sum()))
    return out


def bench_logprobs(
    model, tok, c: Counts, pairs: int, batch: int, prompt: int, cont: int, peak: float
) -> dict:
    from cai_bootstrap.engines.hf import HFEngine

    engine = HFEngine(model, tok, batch_size=batch)
    ids = random_ids(pairs, prompt + cont, seed=11)
    prompts = [ids_to_text(r[:prompt]) for r in ids.tolist()]
    conts = [" " + ids_to_text(r[prompt:]) for r in ids.tolist()]
    times, outs = repeat(lambda: engine.logprobs(prompts, conts), warmup=1, reps=3)
    t = median(times)
    ref = _reference_logprobs(model, ids[:3].cuda(), cont)
    rel = [abs(a - b) / max(abs(b), 1e-9) for a, b in zip(outs[0][:3], ref, strict=True)]
    flops = c.forward_flops(pairs, prompt + cont)
    return {
        "pairs": pairs,
        "batch": batch,
        "seq": prompt + cont,
        "times": times,
        "tokens_per_s": pairs * (prompt + cont) / t,
        "mfu": flops / t / peak,
        "max_rel_err_vs_unbatched_forward": max(rel),
    }
