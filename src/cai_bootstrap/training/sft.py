"""SFT of a LoRA adapter on prompt/completion records, loss on completion tokens only.

    run_sft(SFTSettings(), LoraSettings(), run/sft_examples.jsonl, base_model_dir, run/.../sft, "float32")

Tokens: data.py tokenises each record the way generation does (no EOS appended, BOS only if the
tokenizer adds one by default) and hands TRL `input_ids` + `completion_mask`; SFTTrainer then
builds labels with -100 on every prompt token (completion_only_loss=True).
"""

from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from ..errors import UserError
from ..log import log
from ..records import SFTExample
from . import runner
from .callbacks import CheckpointSealer, FiniteLossMixin, MetricsWriter
from .config import LoraSettings, SFTSettings, TrainResult
from .conversational import conversational, read_sft, sft_train_dataset
from .lora import load_base, load_tokenizer, lora_config


class GuardedSFTTrainer(FiniteLossMixin, SFTTrainer):
    """SFTTrainer that stops on a non-finite loss."""


def sft_args(cfg: SFTSettings, out_dir: Path) -> SFTConfig:
    ours = dict(
        **runner.trl_kwargs(cfg, out_dir),
        # Conversational rows: TRL masks all but the assistant turns ({% generation %} in chat.py).
        completion_only_loss=None if conversational(cfg) else True,
        assistant_only_loss=conversational(cfg),
        packing=cfg.packing,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    )
    args = SFTConfig(**{**ours, **cfg.trl_args})  # TRL's own arguments last (extra_args.py)
    args.device  # noqa: B018  (sets up the distributed state that `runner` waits on)
    return args


def build_sft_trainer(
    cfg: SFTSettings,
    lora: LoraSettings,
    examples: list[SFTExample],  # or ChatSFTExample (sft.dataset_form)
    base_model: Path,
    out_dir: Path,
    dtype: str,
    callbacks: list[TrainerCallback] = (),
    args: SFTConfig | None = None,
) -> GuardedSFTTrainer:
    """A ready trainer (model + fresh LoRA + tokenised data); run_sft trains it, tests inspect it."""
    args = args or sft_args(cfg, out_dir)
    tok = load_tokenizer(base_model)
    model = load_base(base_model, dtype, lora, cfg.gradient_checkpointing)
    return GuardedSFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_train_dataset(cfg, examples, tok),
        processing_class=tok,
        peft_config=lora_config(lora),
        callbacks=[
            MetricsWriter(out_dir / "metrics.jsonl"),
            CheckpointSealer(cfg.keep_checkpoints),
            *callbacks,
        ],
    )


def run_sft(
    cfg: SFTSettings,
    lora: LoraSettings,
    examples_path: Path,
    base_model: Path,
    out_dir: Path,
    dtype: str = "float32",
    *,
    force: bool = False,
    callbacks: list[TrainerCallback] = (),
) -> TrainResult:
    """Train (or resume, or skip when already done) and return where the adapter is."""
    out_dir = Path(out_dir)
    examples = read_sft(cfg, examples_path)
    if not examples:
        raise UserError(f"no SFT examples in {examples_path}", "check the pairs/filter step that writes them")
    data_sha, config_hash = runner.signature(
        cfg, lora, Path(examples_path), dtype, {"base_model": base_model}
    )
    args = sft_args(cfg, out_dir)
    state = args.distributed_state
    done = runner.begin(out_dir, data_sha, config_hash, force, state)
    if done is not None:
        log.info("SFT already complete in %s (same data and settings); skipping", out_dir)
        return done
    t0 = time.time()
    trainer = build_sft_trainer(cfg, lora, examples, base_model, out_dir, dtype, callbacks, args)
    resume, step = runner.resume_point(out_dir, state)
    if state.is_main_process:
        log.info("SFT on %d examples, %g epochs", len(trainer.train_dataset), cfg.epochs)
    return runner.train_and_finish(trainer, out_dir, resume, data_sha, config_hash, step, t0)
