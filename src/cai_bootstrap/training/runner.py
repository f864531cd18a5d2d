"""What SFT and DPO share: the run signature, skip/resume decisions, TRL arguments, the final save.

Layout of a training folder (`out_dir`):
    run.json            signature of the run in progress (data sha256 + config hash), written first
    checkpoints/        checkpoint-<step>/ folders, each sealed when complete (checkpoints.py)
    metrics.jsonl       one line per logged step (train) or evaluation (eval_*)
    adapter/            the final LoRA adapter + tokenizer
    complete.json       written last: the run is done and `adapter/` is final
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..fsguard import disk_errors, remove_tree
from ..kernels import liger_kernels
from ..log import log, plain
from ..signing import model_identity, signed
from ..store import atomic_write_text, canonical_hash, library_versions, sha256_file
from . import checkpoints
from .config import LoraSettings, TrainResult
from .lora import resolve_bf16, sort_target_modules

COMPLETE = "complete.json"
RUN = "run.json"


def signature(settings, lora: LoraSettings, data: Path, dtype: str, models: dict[str, Path | None]) -> tuple:
    """(data sha256, config hash) of a run: what changes the trained weights, nothing else. The same
    settings rule (`signed`) and model identity as every step's signature (cai_bootstrap/runner.py)."""
    inputs = {k: model_identity(v) if v is not None else None for k, v in models.items()}
    config_hash = canonical_hash(
        {"settings": signed(settings), "lora": signed(lora), "dtype": dtype, **inputs}
    )
    return sha256_file(data), config_hash


def _wipe(out_dir: Path) -> None:
    (out_dir / COMPLETE).unlink(missing_ok=True)  # first, so nothing looks finished meanwhile
    for name in ("checkpoints", "adapter", "metrics.jsonl", RUN):
        remove_tree(out_dir / name)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def begin(out_dir: Path, data_sha: str, config_hash: str, force: bool, state) -> TrainResult | None:
    """A TrainResult when a matching finished run makes training unnecessary, else prepare out_dir.

    A finished or partial run made from other data or settings is never reused or silently
    replaced: it is an error unless `force` is set, which starts over.
    """
    done, run = _read(out_dir / COMPLETE), _read(out_dir / RUN)
    mine = {"data_sha256": data_sha, "config_hash": config_hash}
    matches = {k: (done or {}).get(k) for k in mine} == mine
    state.wait_for_everyone()  # every rank has read the folder before the main one changes it
    if done and matches and not force and (out_dir / "adapter").is_dir():
        return TrainResult(
            **{k: v for k, v in done.items() if k in TrainResult.model_fields} | {"skipped": True}
        )
    # A matching complete.json without its adapter folder is a damaged run: redo it, nothing to protect.
    stale = (done is not None and not matches) or (run is not None and {k: run.get(k) for k in mine} != mine)
    if stale and not force:
        raise UserError(
            f"{out_dir} holds a training run made from other data or settings",
            "rerun with --force to retrain from scratch, or choose another run folder",
        )
    if state.is_main_process:
        if force or stale or done is not None:
            _wipe(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / RUN, json.dumps(mine, indent=2))
    state.wait_for_everyone()
    return None


def resume_point(out_dir: Path, state) -> tuple[Path | None, int | None]:
    """(folder, step) of the last intact checkpoint; half-written or altered ones and later metric
    lines go first (the main process removes them, saying why, while the others wait)."""
    ckpt_dir = out_dir / "checkpoints"
    state.wait_for_everyone()  # every rank has built its trainer before the main one changes the folder
    if state.is_main_process:
        checkpoints.drop_incomplete(ckpt_dir)
    state.wait_for_everyone()
    found = checkpoints.checkpoints(ckpt_dir)
    step = max(found) if found else None
    last = found[step] if found else None
    if state.is_main_process:
        checkpoints.truncate_metrics(out_dir / "metrics.jsonl", step or 0)
    state.wait_for_everyone()
    if last is not None:
        log.info("resuming training from %s", last)
    return last, step


def quiet() -> bool:
    return log.getEffectiveLevel() > logging.INFO


def trl_kwargs(cfg, out_dir: Path) -> dict:
    """TrainingArguments fields common to SFTConfig and DPOConfig."""
    return {
        "output_dir": str(out_dir / "checkpoints"),
        "num_train_epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "max_length": cfg.max_length,
        "warmup_steps": cfg.warmup_ratio,  # transformers 5: a float below 1 is a ratio of total steps
        "lr_scheduler_type": cfg.lr_scheduler,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "logging_steps": cfg.logging_steps,
        "logging_nan_inf_filter": False,  # we stop on a non-finite loss instead of hiding it (callbacks.py)
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": None,  # transformers prunes by mtime; CheckpointSealer prunes by step
        CHECKPOINTING_ARG: cfg.gradient_checkpointing,  # TRL defaults it on; we default it off
        "bf16": resolve_bf16(cfg.bf16),
        "fp16": False,
        "use_cpu": not torch.cuda.is_available(),
        "report_to": cfg.report_to,
        "disable_tqdm": quiet() or plain(),  # without a terminal, MetricsWriter logs each step instead
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # every LoRA weight is used in every forward
        "use_liger_kernel": liger_kernels(cfg),
    }


def _checkpointing_arg() -> str:
    """transformers renamed gradient_checkpointing to activation_checkpointing within 5.x (5.17 on the
    GPU image has only the old name; 5.23 warns on it), so use whichever TrainingArguments has."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


CHECKPOINTING_ARG = _checkpointing_arg()


def train_and_finish(
    trainer, out_dir: Path, resume: Path | None, data_sha: str, config_hash: str, step: int | None, t0: float
) -> TrainResult:
    """Train (from `resume`), then save the final adapter. A full or read-only disk ends in one line;
    the sealed checkpoints stay, so a resume after freeing space continues from the last one (a
    checkpoint the failed write left unsealed is dropped then)."""
    with disk_errors("a training checkpoint or the adapter", out_dir, cleanup=out_dir / "adapter.partial"):
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        return finish(trainer, out_dir, data_sha, config_hash, step, t0)


def finish(
    trainer, out_dir: Path, data_sha: str, config_hash: str, resumed: int | None, t0: float
) -> TrainResult:
    """Save the final adapter (atomically), then write complete.json last."""
    tmp = out_dir / "adapter.partial"
    trainer.save_model(str(tmp))
    state = trainer.args.distributed_state
    result = None
    if state.is_main_process:
        # DPO on an SFT adapter keeps a frozen copy named "ref" (TRL); it is not part of the result.
        shutil.rmtree(tmp / "ref", ignore_errors=True)
        sort_target_modules(tmp)
        final = out_dir / "adapter"
        remove_tree(final)
        os.replace(tmp, final)
        result = _result(trainer, final, data_sha, config_hash, resumed, t0)
        record = {**result.model_dump(mode="json"), "versions": library_versions()}
        atomic_write_text(out_dir / COMPLETE, json.dumps(record, indent=2))
    state.wait_for_everyone()
    if result is None:  # other ranks read what the main one wrote
        result = TrainResult(
            **{k: v for k, v in _read(out_dir / COMPLETE).items() if k in TrainResult.model_fields}
        )
    return result


def _result(trainer, adapter: Path, data_sha, config_hash, resumed: int | None, t0: float) -> TrainResult:
    st = trainer.state
    train_logs = [h for h in st.log_history if "loss" in h]
    last = train_logs[-1] if train_logs else {}
    final_loss = last.get(
        "loss", next((h["train_loss"] for h in st.log_history if "train_loss" in h), float("nan"))
    )
    best_step = None
    if st.best_model_checkpoint:
        best_step = checkpoints.checkpoint_step(Path(st.best_model_checkpoint))
    return TrainResult(
        adapter=adapter,
        final_loss=float(final_loss),
        steps=st.global_step,
        epochs=float(st.epoch or 0.0),
        seconds=round(time.time() - t0, 2),
        data_sha256=data_sha,
        config_hash=config_hash,
        resumed_from=resumed,
        best_checkpoint_step=best_step,
        best_eval_loss=st.best_metric,
        metrics={k: float(v) for k, v in last.items() if isinstance(v, int | float)},
    )
