"""How artifacts name a model or a file: never a machine's cache or home path.

    model_ref(cache/gemma-3-270m/hf, run)     -> "embedded:gemma-3-270m"
    model_ref(run/stage1/round1/model, run)   -> "stage1/round1/model"
    model_ref(hub-cache/models--o--n/snapshots/abc, run) -> "o/n@abc"

Anything else (a researcher's own model folder) stays as given: it is what they passed in.
"""

from __future__ import annotations

from pathlib import Path

from .models import embedded_name
from .results import rel


def model_ref(path: Path, run_dir: Path) -> str:
    """A reference that means the same model on another machine (see the module docstring)."""
    path = Path(path)
    name = embedded_name(path)
    if name is not None:
        return f"embedded:{name}"
    parts = path.parts
    for i, part in enumerate(parts):  # huggingface_hub's cache layout: models--owner--name/snapshots/<sha>
        if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/") + "@" + parts[i + 2]
    return rel(run_dir, path)
