"""The two signature rules that the step runner (runner.py) and the training runner
(training/runner.py) share: what identifies a model's weights, and which settings fields are signed.
A low module of its own, so engines/ and training/ need not import the step runner."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from .errors import StepFailed
from .store import canonical_hash, sha256_file


def model_identity(path: Path) -> str:
    """What identifies a model's weights, cheaply: the merge lineage's weight hashes, the embedded GGUF
    hash, or the *config.json files (model, adapter, tokenizer, generation) plus the weight files'
    names and sizes (hashing 15 GB per step costs minutes). Never the path: the same weights in
    another folder are the same model."""
    path = Path(path)
    for name, key in (("lineage.json", "weights_sha256"), ("embedded.json", "gguf_sha256")):
        if (path / name).exists():
            return canonical_hash(json.loads((path / name).read_text()).get(key))
    files = sorted((p.name, p.stat().st_size) for p in path.glob("*.safetensors"))
    configs = {p.name: sha256_file(p) for p in sorted(path.glob("*config.json"))}
    if not configs:
        raise StepFailed(f"{path} is not a model or adapter folder (no config.json)", "check the model path")
    return canonical_hash({"configs": configs, "files": files})


def signed(settings: BaseModel, skip: frozenset[str] = frozenset(), prefix: str = "") -> dict:
    """Every field of a settings model (recursively), minus declared exemptions and `skip` paths."""
    exempt = getattr(type(settings), "signature_exempt", {})
    out = {}
    for name in type(settings).model_fields:
        path = f"{prefix}{name}"
        if name in exempt or path in skip:
            continue
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            out[name] = signed(value, skip, f"{path}.")
        else:
            out[name] = settings.model_dump(mode="json", include={name})[name]
    return out
