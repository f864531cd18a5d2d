"""TRL's and PEFT's own arguments from the recipe: `sft.trl_args`, `dpo.trl_args`, `lora.peft_args`.

    sft:  {trl_args: {optim: adamw_torch_fused, neftune_noise_alpha: 5}}
    lora: {peft_args: {use_rslora: true}}

Each name must be a field of the installed SFTConfig / DPOConfig / LoraConfig and its value must
construct one (checked before any step by `check`); the dict is applied last, over what the project
derives from its own settings. Names the project already sets from one of its own settings, or that
its bookkeeping depends on, are refused with the setting to use instead: two places for one knob
would make the signature and the report disagree with what trained.
"""

from __future__ import annotations

import dataclasses
import tempfile

from ..errors import UserError

_OWN = "is set by cai-bootstrap"
# TrainingArguments/SFTConfig/DPOConfig names the project sets -> where the recipe sets them.
MANAGED_TRL = {
    "output_dir": f"{_OWN}: the step folder's checkpoints/",
    "num_train_epochs": "use epochs",
    "max_steps": "use epochs (a step count would change with the data size silently)",
    "learning_rate": "use learning_rate",
    "per_device_train_batch_size": "use batch_size",
    "per_device_eval_batch_size": "use batch_size",
    "gradient_accumulation_steps": "use grad_accum",
    "max_length": "use max_length",
    "warmup_steps": "use warmup_ratio",
    "warmup_ratio": "use warmup_ratio",
    "lr_scheduler_type": "use lr_scheduler",
    "weight_decay": "use weight_decay",
    "max_grad_norm": "use max_grad_norm",
    "seed": "use seed",
    "data_seed": "use seed",
    "logging_steps": "use logging_steps",
    "save_strategy": f"{_OWN}: checkpoints every save_steps",
    "save_steps": "use save_steps",
    "save_total_limit": "use keep_checkpoints",
    "gradient_checkpointing": "use gradient_checkpointing",
    "activation_checkpointing": "use gradient_checkpointing",
    "bf16": "use bf16",
    "fp16": f"{_OWN}: bf16 or float32 only",
    "report_to": "use run.report_to",
    "logging_nan_inf_filter": f"{_OWN}: a non-finite loss stops the run",
    "use_cpu": f"{_OWN}: from the devices present",
    "use_liger_kernel": "use liger_kernels",
    "completion_only_loss": "use dataset_form",
    "assistant_only_loss": "use dataset_form",
    "packing": "use packing",
    "train_sampling_strategy": "use group_by_length",
    "loss_type": "use loss_type",
    "beta": "use beta",
    "label_smoothing": "use label_smoothing",
    "precompute_ref_log_probs": "use precompute_ref_log_probs",
    "eval_strategy": "use eval_fraction and eval_steps",
    "eval_steps": "use eval_steps",
    "load_best_model_at_end": f"{_OWN}: the best checkpoint by eval loss when there is eval",
    "metric_for_best_model": f"{_OWN}: eval_loss",
    "greater_is_better": f"{_OWN}: lower eval loss is better",
    "resume_from_checkpoint": f"{_OWN}: resumes from the last sealed checkpoint",
}
MANAGED_PEFT = {
    "r": "use lora.r",
    "lora_alpha": "use lora.alpha",
    "lora_dropout": "use lora.dropout",
    "target_modules": "use lora.target_modules",
    "task_type": f"{_OWN}: CAUSAL_LM",
}


def _check(where: str, args: dict, cls, managed: dict[str, str], required: dict) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for name in args:
        if name in managed:
            raise UserError(
                f"{where}.{name} cannot be passed through: it {managed[name]}", f"remove it from {where}"
            )
        if name not in names:
            raise UserError(
                f"{where}.{name} is not a field of the installed {cls.__module__.split('.')[0]} {cls.__name__}",
                f"check the spelling against {cls.__name__}'s documentation for your installed version",
            )
    try:
        cls(**required, **args)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where} is not accepted by {cls.__name__}: {' '.join(str(e).split())[:200]}") from e


def check(stage_index: int, sft_args: dict, dpo_args: dict, peft_args: dict) -> None:
    """Refuse, before any step, a name that is not a field of the installed config classes, one the
    project sets itself, or a value the class rejects."""
    if not (sft_args or dpo_args or peft_args):
        return  # nothing to check: no need to import TRL (seconds) before every run
    from peft import LoraConfig
    from trl import DPOConfig, SFTConfig

    with tempfile.TemporaryDirectory() as tmp:
        # use_cpu: constructing a TrainingArguments must not touch (or require) a GPU here.
        base = {"output_dir": tmp, "use_cpu": True, "report_to": "none"}
        _check(f"stages.{stage_index}.sft.trl_args", sft_args, SFTConfig, MANAGED_TRL, base)
        _check(f"stages.{stage_index}.dpo.trl_args", dpo_args, DPOConfig, MANAGED_TRL, base)
    _check(f"stages.{stage_index}.lora.peft_args", peft_args, LoraConfig, MANAGED_PEFT, {})


def check_recipe(recipe) -> None:
    """Every stage's sft/dpo.trl_args and lora.peft_args (check above), and every tracker named
    (run.report_to, sft/dpo.report_to) is installed: refused before any step."""
    from ..tracking import check_available

    for i, st in enumerate(recipe.stages):
        check(i, st.sft.trl_args, st.dpo.trl_args, st.lora.peft_args)
    check_available(recipe.run.report_to, "run.report_to")
    for i, st in enumerate(recipe.stages):  # TRL's own trackers, checked now rather than at training time
        for part in ("sft", "dpo"):
            names = getattr(st, part).report_to
            check_available([names] if isinstance(names, str) else names, f"stages.{i}.{part}.report_to")
