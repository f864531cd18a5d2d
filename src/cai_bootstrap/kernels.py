"""Liger's Triton kernels (RMSNorm, RoPE, SwiGLU) for generation, scoring and training on CUDA.

Measured on an H200 (BENCHMARKS.md, run 9): in our decode loop at 7B they took a step from 7.9 ms to
5.9 ms (46.7% -> 62.2% of the bandwidth bound) for about 1 s of Triton compile, where torch.compile
reached the same only after ~110 s of compile per process; in LoRA training they raised MFU from 33%
to 38%. They are a setting, off by default, because liger-kernel is an extra, CUDA-only package.

Liger patches an architecture's module for the whole process (its RoPE function and norm/MLP
classes), not only the model it is given: a later load of the same architecture in the same run
uses these kernels too, in training as well.
"""

from __future__ import annotations

import importlib.util

from .errors import UserError

# Only the layer kernels: the LM head and loss stay transformers' (scoring needs the logits).
LAYER_KERNELS = {
    "rope": True,
    "rms_norm": True,
    "swiglu": True,
    "cross_entropy": False,
    "fused_linear_cross_entropy": False,
}


def require_liger(setting: str, device: str) -> None:
    """Refuse a Liger setting where it cannot work, before a library fails deep inside."""
    if device.split(":")[0] != "cuda":
        raise UserError(f"{setting} needs a CUDA GPU", f"set {setting}: false on this machine")
    if importlib.util.find_spec("liger_kernel") is None:
        raise UserError(
            f"{setting} is on but the liger-kernel package is not installed",
            f"pip install liger-kernel, or set {setting}: false",
        )


def apply_layer_kernels(model) -> None:
    """Patch a loaded CUDA model's RMSNorm, RoPE and SwiGLU with Liger's, through transformers' own
    Liger integration (the one Trainer uses). An architecture Liger does not cover is an error:
    transformers would only log it and run without them."""
    require_liger("model.liger_kernels", next(model.parameters()).device.type)
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    from transformers.integrations.liger import apply_liger_kernel

    kind = getattr(model.config, "model_type", None)
    if kind not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        raise UserError(
            f"Liger has no kernels for model type {kind!r}", "set model.liger_kernels: false for this model"
        )
    apply_liger_kernel(model, LAYER_KERNELS)


def check_recipe(recipe, stages) -> None:
    """Every Liger setting of the run, checked at its start rather than at the first training step."""
    if recipe.model.liger_kernels:
        require_liger("model.liger_kernels", recipe.model.resolved_device())
    for s in stages:
        liger_kernels(s.sft)
        liger_kernels(s.dpo)


def liger_kernels(cfg) -> bool:
    """A training section's liger_kernels, refused where it cannot work (transformers would fail deep
    inside Trainer); training/runner.py passes the answer to TRL."""
    if not cfg.liger_kernels:
        return False
    import torch

    require_liger("sft/dpo liger_kernels", "cuda" if torch.cuda.is_available() else "cpu")
    return True
