"""LoRA training steps: plain PEFT SFT (checkpointing off and on), a plain DPO step on the same
pairs, and our TRL-based trainers (cai_bootstrap.training) timed step by step.

FLOPs per token for LoRA (frozen base): forward 2N plus the backward's input gradients 2N = 4N;
with activation recomputation one more forward, 6N. Adapter weights add 6 FLOPs per adapter
parameter (8 with recomputation). Attention: 3x its forward, 4x with recomputation.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from shapes import Counts, ids_to_text, random_ids
from timer import median, repeat


def lora_model(model, dropout: float = 0.05):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=dropout,
        target_modules="all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )
    pm = get_peft_model(model, cfg)
    pm.get_base_model().config.use_cache = False
    pm.train()
    return pm


def set_checkpointing(pm, on: bool) -> None:
    base = pm.get_base_model()
    if on:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_disable()
    pm.train()


def lora_params(pm) -> int:
    return sum(p.numel() for p in pm.parameters() if p.requires_grad)


def train_flops(c: Counts, n_lora: int, batch: int, seq: int, recompute: bool) -> float:
    base = (6.0 if recompute else 4.0) * c.n_matmul + (8.0 if recompute else 6.0) * n_lora
    attn = (4.0 if recompute else 3.0) * c.attn_flops_fwd(seq)
    return batch * (base * seq + attn)


def _sft_step(pm, opt, ids, labels) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = pm(input_ids=ids, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def bench_sft(pm, c: Counts, batch: int, seq: int, recompute: bool, peak: float, prompt: int = 0) -> dict:
    """Median step time of a LoRA SFT step; labels cover the tokens after `prompt`."""
    set_checkpointing(pm, recompute)
    ids = random_ids(batch, seq, seed=3).cuda()
    labels = ids.clone()
    labels[:, :prompt] = -100
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    times, losses = repeat(lambda: _sft_step(pm, opt, ids, labels), warmup=2, reps=5)
    if not all(torch.isfinite(x) for x in losses):
        raise RuntimeError("non-finite SFT loss")
    t = median(times)
    flops = train_flops(c, lora_params(pm), batch, seq, recompute)
    return {
        "batch": batch,
        "seq": seq,
        "checkpointing": recompute,
        "times": times,
        "step_s": t,
        "tokens_per_s": batch * seq / t,
        "mfu": flops / t / peak,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def _cont_logps(pm, ids: torch.Tensor, n_cont: int) -> torch.Tensor:
    """Sum of log p over the last n_cont tokens of each row; only those positions are upcast."""
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = pm(input_ids=ids).logits[:, -n_cont - 1 : -1]
    tgt = ids[:, -n_cont:]
    nll = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), reduction="none")
    return -nll.view(ids.shape[0], n_cont).sum(-1)


def bench_dpo(pm, c: Counts, pairs: int, prompt: int, cont: int, recompute: bool, peak: float) -> dict:
    """One DPO step = chosen and rejected of `pairs` pairs in one forward (2*pairs rows), reference
    log-probs precomputed with the adapter off; compared with an SFT step on the chosen rows."""
    set_checkpointing(pm, recompute)
    chosen = random_ids(pairs, prompt + cont, seed=5).cuda()
    rejected = torch.cat([chosen[:, :prompt], random_ids(pairs, cont, seed=6).cuda()], dim=1)
    both = torch.cat([chosen, rejected])
    with torch.no_grad(), pm.disable_adapter():
        t0 = time.perf_counter()
        ref = _cont_logps(pm, both, cont)
        torch.cuda.synchronize()
        ref_s = time.perf_counter() - t0
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-5)

    def step():
        logp = _cont_logps(pm, both, cont)
        ratio = (logp[:pairs] - ref[:pairs]) - (logp[pairs:] - ref[pairs:])
        loss = -F.logsigmoid(0.1 * ratio).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    times, losses = repeat(step, warmup=2, reps=5)
    if not all(torch.isfinite(x) for x in losses):
        raise RuntimeError("non-finite DPO loss")
    sft = bench_sft(pm, c, pairs, prompt + cont, recompute, peak, prompt=prompt)
    t = median(times)
    flops = train_flops(c, lora_params(pm), 2 * pairs, prompt + cont, recompute)
    return {
        "pairs": pairs,
        "seq": prompt + cont,
        "checkpointing": recompute,
        "times": times,
        "step_s": t,
        "ref_precompute_s": ref_s,
        "tokens_per_s": 2 * pairs * (prompt + cont) / t,
        "mfu": flops / t / peak,
        "sft_same_pairs_step_s": sft["step_s"],
        "dpo_over_sft": t / sft["step_s"],
    }


def _records(n: int, prompt: int, cont: int):
    from cai_bootstrap.records import PreferencePair, SFTExample

    ids = random_ids(n, prompt + 2 * cont, seed=9).tolist()
    sft, pairs = [], []
    for i, r in enumerate(ids):
        p, c1, c2 = (
            ids_to_text(r[:prompt]),
            " " + ids_to_text(r[prompt : prompt + cont]),
            " " + ids_to_text(r[prompt + cont :]),
        )
        sft.append(SFTExample(id=f"s{i}", prompt=p, completion=c1, instruction_id=f"i{i}"))
        pairs.append(
            PreferencePair(
                id=f"p{i}", prompt=p, chosen=c1, rejected=c2, instruction_id=f"i{i}",
                chosen_id=f"c{i}", rejected_id=f"r{i}", reason="benchmark",
            )
        )  # fmt: skip
    return sft, pairs
