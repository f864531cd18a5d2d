"""`make demo`: run the packaged recipe that fits this machine, and say which one and why.

With CUDA, the GPU recipe shows the method's real gain on the embedded model (about 15 minutes on one
H100/H200); without it, the quickstart shows the pipeline working on a laptop CPU (about 10 minutes,
counts too small for a significant gain).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_recipe(cuda: bool) -> tuple[Path, str]:
    """(packaged recipe, the reason it was chosen)."""
    recipes = Path(str(files("cai_bootstrap").joinpath("recipes")))
    if cuda:
        return (
            recipes / "gpu-gemma-270m.yaml",
            "CUDA is available: stage 1 at GPU scale (~15 min on one H200)",
        )
    return recipes / "quickstart.yaml", "no CUDA device: the CPU quickstart (small counts, ~10 min)"


def main(argv: list[str] | None = None) -> None:
    from .cli import main as cli_main

    recipe, why = choose_recipe(cuda_available())
    print(f"demo: recipe {recipe.name} ({why})", flush=True)
    sys.argv = ["cai-bootstrap", "run", "--recipe", str(recipe), *(argv or [])]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
