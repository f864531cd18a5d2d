"""Trainer hooks: metric lines to JSONL, sealed and pruned checkpoints, a stop on non-finite loss."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from ..errors import StepFailed
from ..log import Cadence, log, plain
from . import checkpoints


class MetricsWriter(TrainerCallback):
    """Append one JSON line per log event (train and eval) to metrics.jsonl, from the main process only."""

    def __init__(self, path: Path):
        self.path = path
        self.cadence: Cadence | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, int | float)}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        shown = {k: round(v, 4) for k, v in line.items() if k in ("loss", "eval_loss", "rewards/accuracies")}
        if shown:
            log.debug("step %d %s", state.global_step, shown)
        # Without a terminal there is no trainer bar: these lines are the progress.
        if shown and plain() and self._cadence(state.max_steps).due(state.global_step):
            log.info("training step %d/%d %s", state.global_step, state.max_steps, shown)

    def _cadence(self, total: int) -> Cadence:
        if self.cadence is None:
            self.cadence = Cadence(total)
        return self.cadence


class CheckpointSealer(TrainerCallback):
    """After each checkpoint: wait for every rank's files, seal the folder, prune old ones by step."""

    def __init__(self, keep: int):
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        # Other ranks write their own rng_state_<rank>.pth; the seal must list them all.
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if state.is_world_process_zero:
            ckpt_dir = Path(args.output_dir)
            checkpoints.seal(ckpt_dir / f"checkpoint-{state.global_step}")
            checkpoints.prune(ckpt_dir, self.keep, protect=state.best_model_checkpoint)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()


class FiniteLossMixin:
    """Mixed into a TRL trainer: stop at the first micro-step whose loss is NaN or inf on any rank.

    transformers' default `logging_nan_inf_filter` would hide such a loss from the logs and keep
    training on NaN weights; we turn that filter off and stop instead. The flag is gathered across
    ranks so every process raises together (no rank left waiting in an all-reduce).
    """

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        finite = torch.isfinite(loss.detach()).all().reshape(1).to(torch.int32)
        if self.accelerator.num_processes > 1:
            finite = self.accelerator.gather(finite)
        if not bool(finite.all()):
            step = self.state.global_step + 1
            value = loss.detach().float().item()
            kind = "NaN" if math.isnan(value) else "non-finite"
            raise StepFailed(
                f"training loss became {kind} at step {step}",
                "lower the learning rate, check the data for empty completions, or use float32",
            )
        return loss
