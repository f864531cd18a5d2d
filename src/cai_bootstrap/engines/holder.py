"""Which model is loaded: at most one at a time, and a cheap identity for each model's weights."""

from __future__ import annotations

import json
from pathlib import Path

from .. import models
from ..errors import UserError
from ..log import log
from ..store import canonical_hash, sha256_file
from . import Engine
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

    def __init__(
        self,
        dtype: str,
        device: str,
        batch_size: int,
        liger_kernels: bool = False,
        settings=None,
        cache_dir: Path | None = None,
    ):
        """settings: the recipe's ModelSettings (engine kind and per-engine settings; None: hf);
        cache_dir: where the openai engine keeps answered requests (a killed step resumes)."""
        self.dtype, self.device, self.batch_size = dtype, device, batch_size
        self.liger_kernels = liger_kernels
        self.settings, self.cache_dir = settings, cache_dir
        self.path: Path | None = None
        self.engine: Engine | None = None

    def get(self, path: Path) -> Engine:
        if self.path != path:
            self.release()
            log.info("loading %s (%s, %s)", path, self.dtype, self.device)
            self.engine = self._load(path)
            self.path = path
        return self.engine

    def _load(self, path: Path) -> Engine:
        kind = "hf" if self.settings is None else self.settings.engine
        if kind == "vllm":
            from .vllm import VLLMEngine

            return VLLMEngine.start(path, self.settings.vllm, self.dtype)
        if kind == "openai" and self._served(path):
            from transformers import AutoTokenizer

            from .openai import OpenAIEngine

            return OpenAIEngine(self.settings.openai, AutoTokenizer.from_pretrained(path), self.cache_dir)
        if kind == "openai" and self.settings.openai.trained_models == "error":
            raise UserError(
                f"model.engine is openai, which serves {self.settings.generator}, but the run needs {path}",
                "serve that model too, or set model.openai.trained_models: hf",
            )
        if kind == "openai":
            log.info("openai serves %s only: %s runs in-process (hf)", self.settings.generator, path)
        return HFEngine.from_path(
            path, self.dtype, self.device, self.batch_size, liger_kernels=self.liger_kernels
        )

    def _served(self, path: Path) -> bool:
        """The server serves model.generator; models this run trains (and other judges) are not on it."""
        return Path(path).resolve() == models.resolve(self.settings.generator).resolve()

    def release(self) -> None:
        if self.engine is not None:
            engine, self.engine, self.path = self.engine, None, None
            if isinstance(engine, HFEngine):
                models.free(engine.model)
            elif hasattr(engine, "close"):
                engine.close()  # vllm: ends its worker processes, which frees their GPU memory
            del engine
