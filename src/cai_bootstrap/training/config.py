"""Typed settings for LoRA, SFT and DPO, and the result every training run hands back.

Field names follow what a researcher types in a recipe; `sft.py` and `dpo.py` translate them to
TRL's SFTConfig/DPOConfig (TRL 1.16). Settings that only change logging or checkpoint cadence are
declared in `signature_exempt` (with the reason) so that changing them does not invalidate a
finished run; every other field, `enabled` included, is in the step's signature (runner.py).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..health import GATE_EXEMPT


class LoraSettings(BaseModel):
    """Which LoRA adapter to train, and whether to load the frozen base in 4 or 8 bits (QLoRA)."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int | None = Field(None, ge=1, description="LoRA scaling numerator; None means 2 * r")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="'all-linear' (every linear layer but the LM head) or a list of module names",
    )
    load_in_bits: Literal[None, 4, 8] = Field(
        None, description="quantise the frozen base with bitsandbytes (CUDA only); None keeps full weights"
    )
    peft_args: dict[str, Any] = Field(
        default_factory=dict,
        description="other fields of PEFT's LoraConfig (e.g. use_rslora, use_dora), applied last; "
        "checked against the installed PEFT before the run (extra_args.py)",
    )

    @model_validator(mode="after")
    def _targets_named(self) -> LoraSettings:
        targets = [self.target_modules] if isinstance(self.target_modules, str) else self.target_modules
        if not targets or not all(t.strip() for t in targets):
            raise ValueError("target_modules must name at least one module, and no name may be empty")
        return self

    @property
    def lora_alpha(self) -> int:
        return self.alpha if self.alpha is not None else 2 * self.r


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature_exempt: ClassVar[dict[str, str]] = {
        "logging_steps": "how often metrics are logged, not what is trained",
        "report_to": "where metrics are sent",
        "save_steps": "checkpoint cadence; a resumed run reproduces the uninterrupted one's weights",
        "keep_checkpoints": "how many checkpoints stay on disk",
    }
    enabled: bool = Field(True, description="run this training step at all")
    epochs: float = Field(2.0, gt=0, description="passes over the training data")
    batch_size: int = Field(4, ge=1, description="examples per device per micro-step")
    grad_accum: int = Field(1, ge=1, description="micro-steps per optimizer step")
    max_length: int = Field(
        1024, ge=8, description="tokens per sequence (prompt + completion); longer is cut"
    )
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="fraction of steps for linear LR warmup")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="learning-rate schedule after warmup"
    )
    save_steps: int = Field(50, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(
        2, ge=1, description="newest checkpoints kept by step number (plus the best)"
    )
    seed: int = Field(0, description="seed for LoRA init, data order and dropout")
    logging_steps: int = Field(
        1, ge=1, description="optimizer steps between metric lines (each one a point of the training curves)"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    bf16: bool | None = Field(
        None, description="bf16 autocast; None means on when CUDA supports it, off on CPU"
    )
    report_to: list[str] | str = Field(
        "none", description="trackers for metrics ('none', 'wandb', 'trackio', ...)"
    )
    trl_args: dict[str, Any] = Field(
        default_factory=dict,
        description="other fields of TRL's SFTConfig/DPOConfig (e.g. optim, neftune_noise_alpha), applied "
        "last; checked against the installed TRL before the run (extra_args.py)",
    )
    dataset_form: Literal["completion", "conversational"] = Field(
        "completion",
        description="train from the completion-form files (the frame as text, tokenised like generation) "
        "or the conversational ones through the frame's chat template (training/conversational.py)",
    )
    liger_kernels: bool = Field(
        False,
        description="CUDA only: Liger's fused RMSNorm, RoPE and SwiGLU kernels (needs liger-kernel); "
        "measured 7B LoRA MFU 33% -> 38% (41% with lora.dropout 0)",
    )


class SFTSettings(_Common):
    """Supervised fine-tuning on prompt/completion records, loss on completion tokens only."""

    signature_exempt: ClassVar[dict[str, str]] = {**_Common.signature_exempt, "min_examples": GATE_EXEMPT}
    min_examples: int = Field(
        8, ge=0, description="health gate: stop if SFT is enabled and fewer examples were verified"
    )

    learning_rate: float = Field(2e-4, gt=0, description="peak AdamW learning rate for the adapter")
    packing: bool = Field(
        False, description="pack several examples per row (TRL BFD packing; needs flash-attention on GPU)"
    )
    group_by_length: bool = Field(False, description="batch examples of similar length to cut padding")


class DPOLossType(StrEnum):
    """DPO-family losses that TRL 1.16's DPOTrainer implements (its `loss_type` strings).

    None of these is reference-free: TRL computes reference log-probs for all of them (reference-free
    SimPO lives only in trl.experimental's CPOTrainer, which we do not use).
    """

    SIGMOID = "sigmoid"  # Rafailov et al. 2023, eq. 7
    HINGE = "hinge"  # SLiC
    IPO = "ipo"  # Azar et al. 2023, eq. 17 (TRL normalises by completion length)
    ROBUST = "robust"  # Chowdhury et al. 2024 (uses label_smoothing as flip rate)
    EXO_PAIR = "exo_pair"  # Ji et al. 2024 (needs label_smoothing > 0)
    BCO_PAIR = "bco_pair"
    NCA_PAIR = "nca_pair"
    SPPO_HARD = "sppo_hard"
    APO_ZERO = "apo_zero"
    APO_DOWN = "apo_down"
    DISCOPOP = "discopop"
    SIGMOID_NORM = "sigmoid_norm"  # length-normalised sigmoid


class DPOSettings(_Common):
    """Direct preference optimisation on (prompt, chosen, rejected) pairs."""

    learning_rate: float = Field(5e-5, gt=0, description="peak AdamW learning rate for the adapter")
    loss_type: DPOLossType = Field(DPOLossType.SIGMOID, description="DPO-family loss")
    beta: float = Field(0.1, gt=0, description="strength of the KL tie to the reference model")
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=0.5, description="assumed label-flip rate (robust) or epsilon (exo_pair)"
    )
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of pairs held out for eval loss")
    eval_steps: int = Field(
        25, ge=1, description="optimizer steps between evaluations; save_steps a multiple"
    )
    precompute_ref_log_probs: bool = Field(
        True,
        description="compute reference log-probs once before training instead of every step; TRL first "
        "hashes all model weights for its cache key (measured ~50 s at 7B), so for one or two epochs "
        "on a large model false is faster",
    )

    @model_validator(mode="after")
    def _check(self) -> DPOSettings:
        if self.eval_fraction > 0 and self.save_steps % self.eval_steps:
            raise ValueError("save_steps must be a multiple of eval_steps so the best checkpoint is on disk")
        if self.loss_type == DPOLossType.EXO_PAIR and self.label_smoothing == 0:
            raise ValueError("loss_type exo_pair needs label_smoothing > 0 (the paper uses 1e-3)")
        return self


class TrainResult(BaseModel):
    """What a finished (or skipped because already finished) training run produced."""

    model_config = ConfigDict(extra="forbid")
    adapter: Path = Field(description="folder of the trained LoRA adapter")
    final_loss: float = Field(description="mean training loss of the last logged window")
    steps: int = Field(description="optimizer steps taken")
    epochs: float = Field(description="epochs completed")
    seconds: float = Field(description="wall time of the training that produced the adapter")
    data_sha256: str
    config_hash: str
    skipped: bool = Field(False, description="True when a matching complete.json meant no training ran")
    resumed_from: int | None = Field(None, description="checkpoint step training resumed from")
    best_checkpoint_step: int | None = Field(None, description="DPO: step whose eval loss was best")
    best_eval_loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="last logged metrics")
