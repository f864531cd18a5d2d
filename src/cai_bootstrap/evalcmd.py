"""`cai-bootstrap eval --ifeval FILE`: answer an IFEval-format file in the pipeline's frame, or score
given responses, and write the results as JSON.

Every argument is checked (`check_eval_args`) before a model is loaded or a file written. Results go
to --out (default: eval-results/<input>.<model or responses>.results.json, under the current
directory); with --model the answers are written beside the results as <results stem>.responses.jsonl.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .inputcheck import check_cache_dir, check_path_arg, probe_writable
from .log import log
from .preflight import check_ifeval_file, check_responses_file

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_FOLDER = Path("eval-results")


@dataclass
class EvalPlan:
    ifeval: Path
    model: str | None
    responses: Path | None
    results_out: Path
    answers_out: Path | None  # where --model's answers go (beside results_out); None when scoring a file


def _tag(model: str | None, responses: Path | None) -> str:
    if responses is not None:
        return responses.stem
    ref = str(model)
    name = Path(ref).name if Path(ref).expanduser().exists() else ref.removeprefix("embedded:")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _check_out(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--out {path} is a folder", "give a file name, e.g. --out results/run1.json")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"--out {path} would be inside {existing}, which is a file", "give --out another path"
        )


def check_eval_args(
    ifeval: Path,
    model: str | None,
    responses: Path | None,
    output: Path | None,
    max_new_tokens: int,
    dtype: str,
    batch_size: int,
) -> EvalPlan:
    """Every argument of `eval`, checked before anything is loaded, generated or written."""
    if (model is None) == (responses is None):
        raise UserError(
            "eval needs exactly one of --model (to generate answers) and --responses (to score a file)",
            "give --model embedded:gemma-3-270m, or --responses answers.jsonl",
        )
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype} is not supported", f"use one of: {', '.join(DTYPES)}")
    for name, value in (("--max-new-tokens", max_new_tokens), ("--batch-size", batch_size)):
        if value < 1:
            raise UserError(f"{name} {value} must be at least 1", f"give e.g. {name} 8")
    for what, path in (("--ifeval", ifeval), ("--responses", responses), ("--out", output)):
        check_path_arg(path, what)
    check_cache_dir()
    check_ifeval_file(ifeval, "--ifeval")
    if responses is not None:
        check_responses_file(responses, "--responses")
    else:
        from .models import check_reference

        check_reference(model, "--model")
    results = output or DEFAULT_FOLDER / f"{ifeval.stem}.{_tag(model, responses)}.results.json"
    _check_out(results)
    if why := probe_writable(results.parent):  # /proc, a read-only mount: refuse before scoring
        raise UserError(f"--out {results} cannot be written ({why})", "give --out a folder you can write")
    answers = None
    if model is not None:
        stem = results.name.removesuffix(".json").removesuffix(".results")
        answers = results.with_name(f"{stem}.responses.jsonl")
    return EvalPlan(ifeval, model, responses, results, answers)


def _answer(
    rows, model: str, max_new_tokens: int, dtype: str, batch_size: int, check_nll: bool = True
) -> dict[str, str]:
    import torch

    from . import models
    from .canary import CanarySettings
    from .engines import Sampling
    from .engines.hf import HFEngine
    from .tasks import frame

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The model canary (canary.py) runs on load; only random-weight test models skip its NLL bound.
    canary = CanarySettings() if check_nll else CanarySettings(max_nll=None)
    engine = HFEngine.from_path(
        models.resolve(model), dtype=dtype, device=device, batch_size=batch_size, canary=canary
    )
    sampling = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=frame.STOP)
    texts = engine.generate([frame.prompt(r.prompt) for r in rows], sampling)
    models.free(engine.model)
    return {r.prompt: frame.clean(t[0]) for r, t in zip(rows, texts, strict=True)}


def run_ifeval(plan: EvalPlan, max_new_tokens: int, dtype: str, batch_size: int, check_nll: bool = True):
    """Answer (or read the answers), score, and write the results JSON; returns the IFEvalResult."""
    from .store import atomic_write_text
    from .tasks.ifeval import read_responses, read_rows, score

    rows = read_rows(plan.ifeval)
    if plan.responses is not None:
        answers = read_responses(plan.responses)
    else:
        answers = _answer(rows, plan.model, max_new_tokens, dtype, batch_size, check_nll)
        plan.answers_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            plan.answers_out,
            "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in answers.items()),
        )
        log.info("answers written to %s", plan.answers_out)
    result = score(rows, answers)
    plan.results_out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.results_out, result.model_dump_json(indent=2))
    return result
