"""Our own trainers (cai_bootstrap.training: SFTTrainer/DPOTrainer with our data and callbacks),
timed per optimizer step on a model folder saved from the random-weight model."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from shapes import Counts
from timer import median
from train import _records, train_flops
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, device synchronised at both ends."""

    def __init__(self):
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        torch.cuda.synchronize()
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t0)


def _summary(timer: StepTimer, wall: float, c: Counts, n_lora: int, rows: int, seq: int, gc: bool, peak):
    steady = timer.times[2:] or timer.times  # the first steps include allocator and kernel warm-up
    t = median(steady)
    return {
        "steps": len(timer.times),
        "step_times": timer.times,
        "step_s": t,
        "train_wall_s": wall,
        "outside_steps_s": wall - sum(timer.times),
        "tokens_per_s": rows * seq / t,
        "mfu": train_flops(c, n_lora, rows, seq, gc) / t / peak,
    }


def _fit(cls, kwargs: dict, notes: list[str]):
    """Build a TRL config; where this transformers lacks a field our runner passes, rename or drop it
    and note that (our code targets transformers 5.23, the device image has 5.17)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    if "activation_checkpointing" in kwargs and "activation_checkpointing" not in fields:
        kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
        notes.append("activation_checkpointing passed as gradient_checkpointing")
    for key in [k for k in kwargs if k not in fields]:
        notes.append(f"dropped unknown field {key}={kwargs.pop(key)!r}")
    args = cls(**kwargs)
    args.device  # noqa: B018  (sets up the distributed state, as sft_args/dpo_args do)
    return args


def _sft_args(cfg, out_dir: Path, notes: list[str]):
    from trl import SFTConfig

    from cai_bootstrap.training import runner
    from cai_bootstrap.training.sft import sft_args

    try:
        return sft_args(cfg, out_dir)
    except TypeError as e:
        notes.append(f"sft_args failed on this transformers: {e}")
    extra = {"completion_only_loss": True, "packing": cfg.packing, "train_sampling_strategy": "random"}
    return _fit(SFTConfig, runner.trl_kwargs(cfg, out_dir) | extra, notes)


def _dpo_args(cfg, out_dir: Path, notes: list[str]):
    from trl import DPOConfig

    from cai_bootstrap.training import runner
    from cai_bootstrap.training.dpo import dpo_args

    try:
        return dpo_args(cfg, out_dir, False)
    except TypeError as e:
        notes.append(f"dpo_args failed on this transformers: {e}")
    extra = {
        "loss_type": [cfg.loss_type.value],
        "beta": cfg.beta,
        "label_smoothing": cfg.label_smoothing,
        "precompute_ref_log_probs": cfg.precompute_ref_log_probs,
    }
    return _fit(DPOConfig, runner.trl_kwargs(cfg, out_dir) | extra, notes)


def _n_lora(trainer) -> int:
    return sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


def bench_trl(
    model_dir: Path, work: Path, c: Counts, batch: int, steps: int, prompt: int, cont: int, peak
) -> dict:
    """SFT and DPO through build_sft_trainer / build_dpo_trainer (what run_sft / run_dpo train with)."""
    from cai_bootstrap.training.config import DPOSettings, LoraSettings, SFTSettings
    from cai_bootstrap.training.dpo import build_dpo_trainer
    from cai_bootstrap.training.sft import build_sft_trainer

    sft_recs, pairs = _records(batch * steps, prompt, cont)
    seq, lora, out, notes = prompt + cont, LoraSettings(), {}, []
    common = dict(batch_size=batch, max_length=seq, epochs=1, logging_steps=1, save_steps=100000, bf16=True)
    cfg = SFTSettings(**common)
    args = _sft_args(cfg, work / "sft", notes)
    args.max_steps = steps
    timer = StepTimer()
    trainer = build_sft_trainer(cfg, lora, sft_recs, model_dir, work / "sft", "bfloat16", [timer], args)
    t0 = time.perf_counter()
    trainer.train()
    out["sft"] = _summary(timer, time.perf_counter() - t0, c, _n_lora(trainer), batch, seq, False, peak)
    del trainer
    torch.cuda.empty_cache()

    dcfg = DPOSettings(**common, eval_fraction=0.0)
    args = _dpo_args(dcfg, work / "dpo", notes)
    args.max_steps = steps
    timer = StepTimer()
    trainer = build_dpo_trainer(dcfg, lora, pairs, model_dir, None, work / "dpo", "bfloat16", [timer], args)
    t0 = time.perf_counter()
    trainer.train()
    out["dpo"] = _summary(timer, time.perf_counter() - t0, c, _n_lora(trainer), 2 * batch, seq, False, peak)
    out["dpo_over_sft"] = out["dpo"]["step_s"] / out["sft"]["step_s"]
    out["notes"] = notes
    del trainer
    torch.cuda.empty_cache()
    return out
