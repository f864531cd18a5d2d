"""Which model is loaded: at most one at a time."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .. import models
from ..errors import UserError
from ..log import log
from ..signing import model_identity  # noqa: F401  (the one model identity; re-exported for callers)
from . import Engine
from .hf import HFEngine


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
        canary=None,
    ):
        """settings: the recipe's ModelSettings (engine kind and per-engine settings; None: hf);
        cache_dir: where the openai engine keeps answered requests (a killed step resumes);
        canary: the model canary's settings (default: settings.canary, else the defaults)."""
        self.dtype, self.device, self.batch_size = dtype, device, batch_size
        self.liger_kernels = liger_kernels
        self.settings, self.cache_dir = settings, cache_dir
        self.canary = canary if canary is not None else getattr(settings, "canary", None)
        self.path: Path | None = None
        self.kind: str | None = None
        self.engine: Engine | None = None

    def get(self, path: Path, evaluation: bool = False) -> Engine:
        """The engine for `path`; evaluation=True for held-out and safety answers, which compare the
        base and trained models and so must run both on one engine."""
        kind = self._kind(path, evaluation)
        if (self.path, self.kind) != (path, kind):
            self.release()
            log.info("loading %s with %s (%s, %s)", path, kind, self.dtype, self.device)
            self.engine = self._load(path, kind)
            self.path, self.kind = path, kind
        return self.engine

    def signature(self, path: Path, evaluation: bool = False) -> dict:
        return engine_signature(self.settings, path, evaluation)

    def _kind(self, path: Path, evaluation: bool) -> str:
        return engine_kind(self.settings, path, evaluation)

    def _load(self, path: Path, kind: str) -> Engine:
        return self._loader(path, kind, self.cache_dir)()

    def _loader(self, path: Path, kind: str, cache_dir: Path | None) -> partial:
        return partial(
            load_engine,
            kind,
            path,
            self.dtype,
            self.device,
            self.batch_size,
            self.liger_kernels,
            self.settings,
            cache_dir,
            self.canary,
        )

    def actor_pool(self, path: Path):
        """The Ray actor pool for generating with `path` (model.ray), or None when model.ray.workers is 0.
        Each actor loads its own engine; this process loads none (its GPU memory stays free)."""
        ray = getattr(self.settings, "ray", None)
        if ray is None or ray.workers == 0:
            return None
        from .ray import ActorPool

        kind = self._kind(path, False)
        if kind == "hf" and self.device.startswith("cuda") and ray.gpus_per_worker == 0:
            # Ray hides every GPU from an actor that asked for none (CUDA_VISIBLE_DEVICES is empty).
            raise UserError(
                f"model.ray.workers is {ray.workers} with model.device {self.device}, but "
                "model.ray.gpus_per_worker is 0, so Ray gives the actors no GPU",
                "set model.ray.gpus_per_worker: 1 (a model copy per GPU, or a fraction to share one), "
                "or model.device: cpu",
            )
        self.release()
        # No request cache in actors: several processes would append to one file. The step's shards
        # are the unit of resume under Ray (a finished chunk is written as soon as it comes back).
        make = self._loader(path, kind, None)
        return ActorPool(make, ray.workers, ray.gpus_per_worker, ray.address)

    def release(self) -> None:
        if self.engine is not None:
            engine, self.engine, self.path, self.kind = self.engine, None, None, None
            if isinstance(engine, HFEngine):
                models.free(engine.model)
            elif hasattr(engine, "close"):
                engine.close()  # vllm: ends its worker processes, which frees their GPU memory
            del engine


def load_engine(
    kind: str,
    path: Path,
    dtype: str,
    device: str,
    batch_size: int,
    liger_kernels: bool,
    settings,
    cache_dir: Path | None,
    canary,
) -> Engine:
    """A module-level function (not a method) so that a partial of it pickles into Ray actors."""
    if kind == "vllm":
        from .vllm import VLLMEngine

        return VLLMEngine.start(path, settings.vllm, dtype)
    if kind == "openai":
        from transformers import AutoTokenizer

        from .openai import OpenAIEngine

        return OpenAIEngine(settings.openai, AutoTokenizer.from_pretrained(path), cache_dir)
    # The model canary (canary.py) runs inside the in-process load. vLLM and openai engines load the
    # weights elsewhere: the openai engine checks its tokenizer against the server's instead.
    return HFEngine.from_path(path, dtype, device, batch_size, liger_kernels=liger_kernels, canary=canary)


def engine_signature(settings, path: Path, evaluation: bool = False) -> dict:
    """What a step's signature records about the engine: another engine samples differently. Empty for
    hf, so the signatures of runs made before engines could be chosen still match. A function of the
    recipe alone, so `status` and tests compute it without an Engines holder."""
    kind = engine_kind(settings, path, evaluation)
    if kind == "openai":  # the server's extra sampling fields change what it samples
        return {"engine": kind, "sampling_fields": settings.openai.sampling_fields}
    return {} if kind == "hf" else {"engine": kind}


def engine_kind(settings, path: Path, evaluation: bool) -> str:
    """settings: the recipe's ModelSettings (None: hf)."""
    kind = "hf" if settings is None else settings.engine
    if kind != "openai" or (_served(settings, path) and not evaluation):
        return kind
    # The server holds model.generator only: the models this run trains, and evaluation (base and
    # trained under the same conditions), run in-process, unless the recipe forbids it.
    if settings.openai.trained_models == "error":
        raise UserError(
            f"model.engine is openai, which serves {settings.generator}, but the run needs {path} "
            + ("for evaluation, which runs base and trained models alike" if evaluation else ""),
            "set model.openai.trained_models: hf (in-process) or use model.engine: vllm",
        )
    return "hf"


def _served(settings, path: Path) -> bool:
    """The server serves model.generator; models this run trains (and other judges) are not on it."""
    return Path(path).resolve() == models.resolve(settings.generator).resolve()
