"""Which model is loaded: at most one at a time."""

from __future__ import annotations

from pathlib import Path

from .. import models
from ..log import log
from ..runner import model_identity  # noqa: F401  (the one model identity; re-exported for callers)
from .hf import HFEngine


class Engines:
    """Holds at most one loaded model; asking for another frees the first (one model at a time)."""

    def __init__(self, dtype: str, device: str, batch_size: int, liger_kernels: bool = False):
        self.dtype, self.device, self.batch_size = dtype, device, batch_size
        self.liger_kernels = liger_kernels
        self.path: Path | None = None
        self.engine: HFEngine | None = None

    def get(self, path: Path) -> HFEngine:
        if self.path != path:
            self.release()
            log.info("loading %s (%s, %s)", path, self.dtype, self.device)
            self.engine = HFEngine.from_path(
                path, self.dtype, self.device, self.batch_size, liger_kernels=self.liger_kernels
            )
            self.path = path
        return self.engine

    def release(self) -> None:
        if self.engine is not None:
            engine, self.engine, self.path = self.engine, None, None
            models.free(engine.model)
            del engine
