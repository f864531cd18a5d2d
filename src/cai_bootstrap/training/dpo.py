"""DPO of a LoRA adapter on preference pairs, continuing the SFT adapter (or a fresh one).

    run_dpo(DPOSettings(), LoraSettings(), run/pairs.jsonl, base_model_dir, run/.../sft/adapter, run/.../dpo, "float32")

The reference model (what TRL 1.16 does with ref_model=None, checked in dpo_trainer.py):
- continuing an SFT adapter: TRL copies the adapter into a frozen second adapter named "ref" and
  computes reference log-probs with it, so the reference is the SFT model (Rafailov et al. 2023,
  section 4: pi_ref = pi_SFT), not the bare base;
- "DPO only" (no SFT adapter): a fresh LoRA starts at zero, and the reference is the same model with
  the adapter disabled, i.e. the base model.
With precompute_ref_log_probs the reference log-probs of the train and eval sets are computed once
before the first step (TRL stores them as dataset columns) instead of once per step and epoch.
"""

from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback
from trl import DPOConfig, DPOTrainer

from ..errors import UserError
from ..log import log
from ..records import PreferencePair
from . import runner
from .callbacks import CheckpointSealer, FiniteLossMixin, MetricsWriter
from .config import DPOSettings, LoraSettings, TrainResult
from .conversational import preference_train_dataset, read_pairs
from .data import eval_split
from .lora import attach_adapter, load_base, load_tokenizer, lora_config


class GuardedDPOTrainer(FiniteLossMixin, DPOTrainer):
    """DPOTrainer that stops on a non-finite loss and takes our tokenised pairs as they are."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "prompt" in dataset.column_names:  # conversational rows: TRL renders them via the frame template
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        # TRL would re-tokenise text columns and append EOS to chosen and rejected (see data.py); our
        # rows already hold prompt_ids/chosen_ids/rejected_ids made the way generation tokenises.
        missing = {"prompt_ids", "chosen_ids", "rejected_ids"} - set(dataset.column_names)
        if missing:
            raise ValueError(
                f"{dataset_name} dataset lacks {sorted(missing)}; build it with data.preference_dataset"
            )
        return dataset


def dpo_args(cfg: DPOSettings, out_dir: Path, has_eval: bool) -> DPOConfig:
    extra = {}
    if has_eval:
        extra = {
            "eval_strategy": "steps",
            "eval_steps": cfg.eval_steps,
            "load_best_model_at_end": True,
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
        }
    ours = dict(
        **runner.trl_kwargs(cfg, out_dir),
        loss_type=[cfg.loss_type.value],
        beta=cfg.beta,
        label_smoothing=cfg.label_smoothing,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        **extra,
    )
    args = DPOConfig(**{**ours, **cfg.trl_args})  # TRL's own arguments last (extra_args.py)
    args.device  # noqa: B018  (sets up the distributed state that `runner` waits on)
    return args


def build_dpo_trainer(
    cfg: DPOSettings,
    lora: LoraSettings,
    pairs: list[PreferencePair],
    base_model: Path,
    sft_adapter: Path | None,
    out_dir: Path,
    dtype: str,
    callbacks: list[TrainerCallback] = (),
    args: DPOConfig | None = None,
) -> GuardedDPOTrainer:
    train, held = eval_split(pairs, cfg.eval_fraction, cfg.seed)
    args = args or dpo_args(cfg, out_dir, bool(held))
    tok = load_tokenizer(base_model)
    model = load_base(base_model, dtype, lora, cfg.gradient_checkpointing)
    if sft_adapter is not None:
        model = attach_adapter(model, sft_adapter)
    return GuardedDPOTrainer(
        model=model,
        args=args,
        train_dataset=preference_train_dataset(cfg, train, tok),
        eval_dataset=preference_train_dataset(cfg, held, tok) if held else None,
        processing_class=tok,
        peft_config=lora_config(lora) if sft_adapter is None else None,
        callbacks=[
            MetricsWriter(out_dir / "metrics.jsonl"),
            CheckpointSealer(cfg.keep_checkpoints),
            *callbacks,
        ],
    )


def run_dpo(
    cfg: DPOSettings,
    lora: LoraSettings,
    pairs_path: Path,
    base_model: Path,
    sft_adapter: Path | None,
    out_dir: Path,
    dtype: str = "float32",
    *,
    force: bool = False,
    callbacks: list[TrainerCallback] = (),
) -> TrainResult:
    """Train (or resume, or skip when already done); the adapter is the best by eval loss when there is eval."""
    out_dir = Path(out_dir)
    pairs = read_pairs(cfg, pairs_path)
    if not pairs:
        raise UserError(
            f"no preference pairs in {pairs_path}", "check the pairs step (filters may drop all pairs)"
        )
    models = {"base_model": base_model, "sft_adapter": sft_adapter}
    data_sha, config_hash = runner.signature(cfg, lora, Path(pairs_path), dtype, models)
    args = dpo_args(cfg, out_dir, bool(eval_split(pairs, cfg.eval_fraction, cfg.seed)[1]))
    state = args.distributed_state
    done = runner.begin(out_dir, data_sha, config_hash, force, state)
    if done is not None:
        log.info("DPO already complete in %s (same data and settings); skipping", out_dir)
        return done
    t0 = time.time()
    trainer = build_dpo_trainer(cfg, lora, pairs, base_model, sft_adapter, out_dir, dtype, callbacks, args)
    resume, step = runner.resume_point(out_dir, state)
    if state.is_main_process:
        n_train = len(trainer.train_dataset)
        log.info("DPO (%s) on %d pairs, %d held out", cfg.loss_type.value, n_train, len(pairs) - n_train)
    return runner.train_and_finish(trainer, out_dir, resume, data_sha, config_hash, step, t0)
