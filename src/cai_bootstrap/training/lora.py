"""Load the frozen base model (optionally 4/8-bit) and describe the LoRA adapter trained on top."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import UserError
from .config import LoraSettings

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_bf16(requested: bool | None) -> bool:
    """bf16 autocast: as asked, or on when a CUDA device supports it (TRL's own default is on everywhere)."""
    if requested is None:
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if requested and not torch.cuda.is_available():
        raise UserError("bf16 training was requested but there is no CUDA device", "set bf16: false on CPU")
    return requested


def lora_config(lora: LoraSettings) -> LoraConfig:
    ours = {
        "r": lora.r,
        "lora_alpha": lora.lora_alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.target_modules,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    return LoraConfig(**{**ours, **lora.peft_args})  # PEFT's own arguments last (extra_args.py)


def sort_target_modules(adapter: Path) -> None:
    """Rewrite adapter_config.json with `target_modules` sorted. PEFT keeps them as a set, so their
    order follows the process's string-hash seed; unsorted, the same weights would get another
    config digest in every process and an SFT redo would redo DPO and the merge after it."""
    import json

    from ..store import atomic_write_text

    path = Path(adapter) / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True))


def _quantization(lora: LoraSettings, dtype: torch.dtype):
    if lora.load_in_bits is None:
        return None
    if not torch.cuda.is_available():
        raise UserError(
            f"lora.load_in_bits={lora.load_in_bits} needs a CUDA device (bitsandbytes)",
            "set lora.load_in_bits: null on CPU",
        )
    try:
        import bitsandbytes  # noqa: F401  (only checks that it is installed)
    except ImportError as e:
        raise UserError("lora.load_in_bits needs bitsandbytes", "pip install bitsandbytes") from e
    from transformers import BitsAndBytesConfig

    if lora.load_in_bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def load_tokenizer(base_model: Path):
    tok = AutoTokenizer.from_pretrained(base_model)
    if tok.pad_token is None:
        # Padding positions are masked out of attention and loss, so reusing EOS there adds nothing to the text.
        tok.pad_token = tok.eos_token
    return tok


def load_base(base_model: Path, dtype: str, lora: LoraSettings, gradient_checkpointing: bool):
    """The frozen base model in `dtype` ('float32', 'bfloat16', 'float16'), quantised if asked."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'", f"use one of {sorted(DTYPES)}")
    if not (Path(base_model) / "config.json").exists():
        raise UserError(f"base model folder {base_model} has no config.json", "resolve the model path first")
    torch_dtype = DTYPES[dtype]
    quant = _quantization(lora, torch_dtype)
    kwargs = {"dtype": torch_dtype, "use_safetensors": True}  # never a pickle (modelcheck.py)
    if quant is not None:
        kwargs["quantization_config"] = quant
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if quant is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return model


def attach_adapter(model, adapter: Path) -> PeftModel:
    """Wrap `model` with a trained adapter that keeps training (DPO after SFT)."""
    if not (Path(adapter) / "adapter_config.json").exists():
        raise UserError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)", "run SFT first")
    return PeftModel.from_pretrained(model, adapter, is_trainable=True)
