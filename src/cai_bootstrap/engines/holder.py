"""Which model is loaded: at most one at a time, and a cheap identity for each model's weights."""

from __future__ import annotations

import json
from pathlib import Path

from .. import models
from ..log import log
from ..store import canonical_hash, sha256_file
from .hf import HFEngine


def model_identity(path: Path) -> str:
    """What identifies a model's weights, cheaply: the merge lineage hash, the embedded GGUF hash,
    or config.json plus the weight files' names and sizes (hashing 15 GB per step would cost minutes)."""
    for name, key in (("lineage.json", "weights_sha256"), ("embedded.json", "gguf_sha256")):
        if (path / name).exists():
            return canonical_hash(json.loads((path / name).read_text()).get(key))
    files = sorted((p.name, p.stat().st_size) for p in path.glob("*.safetensors"))
    return canonical_hash({"config": sha256_file(path / "config.json"), "files": files})


class Engines:
    """Holds at most one loaded model; asking for another frees the first (one model at a time)."""

    def __init__(self, dtype: str, device: str, batch_size: int, liger_kernels: bool = False, canary=None):
        self.dtype, self.device, self.batch_size = dtype, device, batch_size
        self.liger_kernels, self.canary = liger_kernels, canary
        self.path: Path | None = None
        self.engine: HFEngine | None = None

    def get(self, path: Path) -> HFEngine:
        if self.path != path:
            self.release()
            log.info("loading %s (%s, %s)", path, self.dtype, self.device)
            self.engine = HFEngine.from_path(
                path,
                self.dtype,
                self.device,
                self.batch_size,
                liger_kernels=self.liger_kernels,
                canary=self.canary,
            )
            self.path = path
        return self.engine

    def release(self) -> None:
        if self.engine is not None:
            engine, self.engine, self.path = self.engine, None, None
            models.free(engine.model)
            del engine
