"""`cai-bootstrap eval --ifeval FILE`: answer an IFEval-format file in the pipeline's frame, or score
given responses, and write the results as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from .engines import Sampling
from .errors import UserError
from .log import log
from .store import atomic_write_text
from .tasks import frame
from .tasks.ifeval import IFEvalResult, read_responses, read_rows, score


def _answer(
    rows, model: str, max_new_tokens: int, dtype: str, batch_size: int, check_nll: bool = True
) -> dict[str, str]:
    import torch

    from . import models
    from .canary import CanarySettings
    from .engines.hf import HFEngine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    canary = CanarySettings() if check_nll else CanarySettings(max_nll=None)
    engine = HFEngine.from_path(
        models.resolve(model), dtype=dtype, device=device, batch_size=batch_size, canary=canary
    )
    sampling = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=frame.STOP)
    texts = engine.generate([frame.prompt(r.prompt) for r in rows], sampling)
    models.free(engine.model)
    return {r.prompt: frame.clean(t[0]) for r, t in zip(rows, texts, strict=True)}


def run_ifeval(
    ifeval: Path,
    model: str | None,
    responses: Path | None,
    output: Path | None,
    max_new_tokens: int,
    dtype: str,
    batch_size: int,
    check_nll: bool = True,
) -> tuple[IFEvalResult, Path]:
    rows = read_rows(ifeval)
    if not rows:
        raise UserError(f"{ifeval} has no prompts", "pass a non-empty IFEval-format JSONL")
    if responses is not None:
        answers = read_responses(responses)
        tag = responses.stem
    elif model is not None:
        answers = _answer(rows, model, max_new_tokens, dtype, batch_size, check_nll)
        tag = model.replace("/", "_").replace(":", "_")
        resp_path = (output or ifeval).with_name(f"{ifeval.stem}.{tag}.responses.jsonl")
        atomic_write_text(
            resp_path, "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in answers.items())
        )
        log.info("responses written to %s", resp_path)
    else:
        raise UserError("eval needs --model (to generate answers) or --responses (to score a file)")
    result = score(rows, answers)
    path = output or ifeval.with_name(f"{ifeval.stem}.{tag}.results.json")
    atomic_write_text(path, result.model_dump_json(indent=2))
    return result, path
