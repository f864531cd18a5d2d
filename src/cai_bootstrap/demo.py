"""`make demo`: run the packaged recipe that fits this machine, and say which one and why.

With CUDA, the GPU recipe shows the method's real gain on the embedded model (its steps took 2.5-3.5
minutes a round, 3 rounds, on one H200: RESULTS.md); without it, the quickstart shows the pipeline
working on a CPU (counts too small for a significant gain; 36 minutes measured on a busy 2-core machine).
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
            "CUDA is available: stage 1 at GPU scale (3 rounds of 2.5-3.5 min of steps on one H200)",
        )
    return (
        recipes / "quickstart.yaml",
        "no CUDA device: the CPU quickstart (small counts; 36 min measured on a busy 2-core CPU)",
    )


def main(argv: list[str] | None = None) -> None:
    from .cli import main as cli_main

    recipe, why = choose_recipe(cuda_available())
    print(f"demo: recipe {recipe.name} ({why})", flush=True)
    sys.argv = ["cai-bootstrap", "run", "--recipe", str(recipe), *(argv or [])]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
