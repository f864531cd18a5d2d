"""A local model folder, checked from its files alone before any step (no torch, no transformers).

What loading would otherwise report as a traceback, minutes in: a config.json that is empty, not
JSON or names no model_type; a model that needs `trust_remote_code` (its own Python code, which
cai-bootstrap never runs); weights that are pickles (`torch.load` of a .bin or .pt file can execute
code, so they are refused, never loaded); a safetensors file cut short or with a broken header.

The safetensors check reads the 8-byte header length and the JSON header (the format's own
layout: https://github.com/huggingface/safetensors#format) and compares the end of the last tensor
with the file size; it reads no tensor data, so it costs microseconds even at 15 GB. It is written
here rather than with the `safetensors` package because that package's reader maps the whole file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from .errors import UserError

PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
_MAX_HEADER = 100 * 2**20  # the format caps the header at 100 MB


def _config(folder: Path, field: str) -> dict:
    path = folder / "config.json"
    fix = "point at a folder saved by transformers (save_pretrained)"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{field}: {path} cannot be read ({e})", fix) from e
    if not text.strip():
        raise UserError(f"{field}: {path} is empty", fix)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise UserError(f"{field}: {path} is not valid JSON ({e})", fix) from e
    if not isinstance(config, dict):
        raise UserError(f"{field}: {path} is not a JSON object", fix)
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise UserError(f"{field}: {path} names no model_type", fix)
    return config


def safetensors_problem(path: Path) -> str:
    """Why a .safetensors file is unusable ('' when its header and size agree)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"is {size} bytes, shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            return "has a header length past the end of the file (cut short or not safetensors)"
        try:
            header = json.loads(f.read(n))
            ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "has an unreadable header (not safetensors, or damaged)"
    if 8 + n + max(ends, default=0) != size:
        return f"is {size} bytes but its header describes {8 + n + max(ends, default=0)} (cut short?)"
    return ""


def check_folder(folder: Path, field: str) -> None:
    """Raise a UserError for the first reason the model folder cannot be loaded safely."""
    config = _config(folder, field)
    if "auto_map" in config:
        raise UserError(
            f"{field}: {folder} needs trust_remote_code (its config.json maps to Python code in the "
            f"folder, model_type {config['model_type']!r}); cai-bootstrap never runs a model's own code",
            "use a model whose architecture transformers ships, saved with save_pretrained",
        )
    weights = sorted(folder.glob("*.safetensors"))
    pickles = sorted(p for pattern in PICKLES for p in folder.glob(pattern))
    if pickles and not weights:
        raise UserError(
            f"{field}: {folder} holds its weights as pickles ({pickles[0].name}); loading a pickle can "
            "execute code, so cai-bootstrap refuses it",
            "convert the weights to safetensors (save_pretrained(..., safe_serialization=True))",
        )
    for path in weights:
        if why := safetensors_problem(path):
            raise UserError(f"{field}: {path} {why}", "copy or download the model again")


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def module_names(folder: Path) -> set[str] | None:
    """The names of the modules that hold weights ('model.layers.0.self_attn.q_proj'), from the
    safetensors headers alone; None when the folder has no readable safetensors weights."""
    names: set[str] = set()
    for path in sorted(Path(folder).glob("*.safetensors")):
        if safetensors_problem(path):
            return None
        for key in _header(path):
            if key != "__metadata__":
                names.add(key.rsplit(".", 1)[0])
    return names or None


def unmatched_target(target: str | list[str], modules: set[str]) -> str | None:
    """The first `lora.target_modules` entry that matches no module, by PEFT's rule (a list entry
    matches a module named exactly so or ending in '.entry'; a string other than 'all-linear' is a
    regular expression matched against whole names); None when every entry matches one."""
    import re

    if target == "all-linear":
        return None
    if isinstance(target, str):
        return None if any(re.fullmatch(target, m) for m in modules) else target
    for entry in target:
        if not any(m == entry or m.endswith("." + entry) for m in modules):
            return entry
    return None
