"""Merge a LoRA adapter into its base weights: the model the next stage generates with.

    merge_adapter(base_model_dir, run/stage1/.../dpo/adapter, run/stage1/model, lineage={...})

The merged folder holds safetensors weights, the base tokenizer with the frame as its chat template
(chat.py), a greedy generation config with the frame's stop strings, and lineage.json (the caller's
lineage plus the sha256 of every weight file). It is built in a sibling temp folder and renamed
into place, so a kill never leaves a half-merged model where the next stage looks.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..card import write_card
from ..errors import UserError
from ..fsguard import disk_errors, remove_tree
from ..store import atomic_write_text, library_versions, sha256_file
from .chat import frame_generation_config, install_frame
from .lora import DTYPES

LINEAGE = "lineage.json"


def merge_adapter(
    base_model: Path,
    adapter: Path,
    out: Path,
    lineage: dict,
    dtype: str = "float32",
    max_new_tokens: int = 256,
) -> Path:
    """Write base+adapter merged to `out` (replacing it) and return `out`.

    Merge in float32 (the default) unless the base is too large: rounding a merged bf16 weight
    makes its greedy output drift from base+adapter. `max_new_tokens` goes into the generation
    config: the held-out eval's budget, so a plain generate() decodes as the eval did.
    """
    base_model, adapter, out = Path(base_model), Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").exists():
        raise UserError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'", f"use one of {sorted(DTYPES)}")
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=DTYPES[dtype], use_safetensors=True)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    remove_tree(tmp)
    with disk_errors("the merged model", out.parent, cleanup=tmp):
        merged.save_pretrained(tmp)
        install_frame(AutoTokenizer.from_pretrained(base_model)).save_pretrained(tmp)
        frame_generation_config(tmp, max_new_tokens).save_pretrained(tmp)
    weights = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.safetensors"))}
    if not weights:
        raise UserError(f"merged model in {tmp} has no safetensors weights", "check the transformers version")
    parent = json.loads((base_model / LINEAGE).read_text()) if (base_model / LINEAGE).exists() else None
    record = {
        **lineage,
        # The model the whole chain started from (a stage-2 base is stage 1's merged model): the card's origin.
        "root_model": (parent or {}).get("root_model") or lineage.get("base_model", str(base_model)),
        "max_new_tokens": max_new_tokens,
        "base_model": lineage.get("base_model", str(base_model)),
        "merged_adapter": lineage.get("merged_adapter", str(adapter)),
        "weights_sha256": weights,
        # A stage-2 base is stage 1's merged model: keep its history inside this one.
        "parent_lineage": parent,
        "merged_at": datetime.now(UTC).isoformat(),
        "versions": library_versions(),
    }
    atomic_write_text(tmp / LINEAGE, json.dumps(record, indent=2, default=str))
    write_card(tmp, record)  # without results: the evaluation runs after the merge (export adds them)
    remove_tree(out)
    os.replace(tmp, out)
    return out
