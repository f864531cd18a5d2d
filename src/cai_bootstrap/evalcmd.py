"""`cai-bootstrap eval --ifeval FILE`: answer an IFEval-format file in the pipeline's frame, or score
given responses, and write the results as JSON.

Every argument is checked (`check_eval_args`) before a model is loaded or a file written. Results go
to --out (default: eval-results/<input>.<model or responses>.results.json, under the current
directory); with --model the answers are written beside the results as <results stem>.responses.jsonl.
A local model or responses file is named by its folder's and its own name plus a hash of its full
path, so two merged models (both in folders named `model`) never share a results file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .fsguard import check_output_file
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
    local = responses if responses is not None else Path(str(model)).expanduser()
    if responses is not None or local.exists():
        full = local.resolve()
        digest = hashlib.sha256(str(full).encode()).hexdigest()[:8]
        name = f"{full.parent.name}_{full.stem if responses is not None else full.name}-{digest}"
    else:  # embedded:NAME or a hub id: the reference itself is unique
        name = str(model).removeprefix("embedded:")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def accuracy_rows(result) -> dict[str, tuple[float, float, float, int]]:
    """Per measure of an IFEvalResult: (rate, Wilson low, Wilson high, n), from its per-prompt rows."""
    from .stats import wilson

    hits = {
        "prompt_strict": [all(p.strict) for p in result.prompts],
        "prompt_loose": [all(p.loose) for p in result.prompts],
        "instruction_strict": [x for p in result.prompts for x in p.strict],
        "instruction_loose": [x for p in result.prompts for x in p.loose],
    }
    rows = {}
    for name, outcomes in hits.items():
        low, high = wilson(sum(outcomes), len(outcomes))
        rows[name] = (getattr(result, name), low, high, len(outcomes))
    return rows


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
    check_output_file(results, "--out")
    if why := probe_writable(results.parent):  # /proc, a read-only mount: refuse before scoring
        raise UserError(f"--out {results} cannot be written ({why})", "give --out a folder you can write")
    answers = None
    if model is not None:
        stem = results.name.removesuffix(".json").removesuffix(".results")
        answers = results.with_name(f"{stem}.responses.jsonl")
        check_output_file(answers, "the answers file beside --out")
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
