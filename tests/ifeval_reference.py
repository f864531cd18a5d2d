"""lm-eval's IFEval checkers as an oracle for ours, offline, and `score_both` to compare whole files.

lm-eval (installed with --no-deps by the dev extra) ports Google's instruction_following_eval; its
`lm_eval.tasks.ifeval` modules need only nltk, langdetect and immutabledict. Importing them the usual
way would run `lm_eval/tasks/__init__.py`, which pulls in the whole harness (datasets, torch
evaluators...), so the three module files are loaded under their own names with placeholder parent
packages that are removed again afterwards. Their import checks for NLTK's `punkt_tab` and downloads
it when missing: we first write the same English tables our scorer uses (tokens.write_punkt_tab)
into a private temporary folder on `nltk.data.path`, so nothing is fetched.

Run as a script to compare the two scorers on a file:
    PYTHONPATH=src python tests/ifeval_reference.py INPUT.jsonl RESPONSES.jsonl
INPUT: an IFEval-format file, or a stage's held-out Instruction records (their IFEval-id constraints
are compared). RESPONSES: `{prompt, response}` lines, e.g. what `eval --ifeval ... --model ...`
writes, or a stage's eval records.jsonl (runs/NAME/stage1/ifeval_FILE_base/records.jsonl,
.../round1/ifeval_FILE_trained/records.jsonl, eval_base/, round1/eval/).
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import types
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cai_bootstrap.tasks.constraints import check
from cai_bootstrap.tasks.constraints.tokens import write_punkt_tab

PARENTS = ("lm_eval", "lm_eval.tasks")


@lru_cache(maxsize=1)
def reference() -> types.ModuleType:
    """lm-eval's `lm_eval.tasks.ifeval.utils` module (it imports the registry and checkers)."""
    spec = importlib.util.find_spec("lm_eval")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        raise ImportError("lm-eval is not installed: pip install --no-deps 'lm-eval==0.4.13'")
    root = Path(spec.origin).parent
    punkt_root = Path(tempfile.mkdtemp(prefix="cai-punkt-"))
    atexit.register(shutil.rmtree, punkt_root, True)  # the reference reads it until the session ends
    write_punkt_tab(punkt_root)
    saved = {name: sys.modules.get(name) for name in PARENTS}
    try:
        for name, folder in zip(PARENTS, (root, root / "tasks"), strict=True):
            stub = types.ModuleType(name)
            stub.__path__ = [str(folder)]
            sys.modules[name] = stub
        return importlib.import_module("lm_eval.tasks.ifeval.utils")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def reference_version() -> str:
    return f"lm-eval {version('lm_eval')}"


def reference_outcomes(row: dict[str, Any], response: str) -> tuple[list[bool], list[bool]]:
    """lm-eval's per-instruction (strict, loose) outcomes for one IFEval row and its response."""
    utils = reference()
    inp = utils.InputExample(
        key=row.get("key", 0),
        instruction_id_list=row["instruction_id_list"],
        prompt=row["prompt"],
        kwargs=[k or {} for k in row["kwargs"]],
    )
    strict = utils.test_instruction_following_strict(inp, response)
    loose = utils.test_instruction_following_loose(inp, response)
    return strict.follow_instruction_list, loose.follow_instruction_list


def our_outcomes(row: dict[str, Any], response: str) -> tuple[list[bool], list[bool]]:
    """Our per-instruction (strict, loose) outcomes, through the same `check` the scorer uses."""
    args = list(zip(row["instruction_id_list"], row["kwargs"], strict=True))
    strict = [check(i, k, response, prompt=row["prompt"]) for i, k in args]
    loose = [check(i, k, response, prompt=row["prompt"], loose=True) for i, k in args]
    return strict, loose


def _accuracies(outcomes: list[tuple[list[bool], list[bool]]]) -> dict[str, float]:
    strict = [s for s, _ in outcomes]
    loose = [lo for _, lo in outcomes]
    flat_s = [x for s in strict for x in s]
    flat_l = [x for lo in loose for x in lo]
    n = max(len(outcomes), 1)
    return {
        "prompt_strict": sum(all(s) for s in strict) / n,
        "prompt_loose": sum(all(lo) for lo in loose) / n,
        "instruction_strict": sum(flat_s) / max(len(flat_s), 1),
        "instruction_loose": sum(flat_l) / max(len(flat_l), 1),
    }


def score_both(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Score rows (IFEval columns plus `response`) with ours and lm-eval's; print the four accuracies
    side by side and return them with the rows where any outcome differs."""
    ours = [our_outcomes(r, r["response"]) for r in rows]
    theirs = [reference_outcomes(r, r["response"]) for r in rows]
    a, b = _accuracies(ours), _accuracies(theirs)
    differ = [r.get("key") for r, o, t in zip(rows, ours, theirs, strict=True) if o != t]
    print(f"{'measure':<20}{'cai-bootstrap':>15}{reference_version():>18}")
    for k in a:
        print(f"{k:<20}{a[k]:>15.4f}{b[k]:>18.4f}")
    print(f"{len(rows)} prompts, {len(differ)} with any differing outcome: {differ[:20]}")
    return {"ours": a, "reference": b, "differ": differ}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _as_ifeval_row(record: dict[str, Any]) -> dict[str, Any] | None:
    """An IFEval row as is; one of our Instruction records (a stage's held-out set) as an IFEval row
    of its IFEval-id constraints (the reference has no `cai:` ids), or None when it has none."""
    if "instruction_id_list" in record:
        return record
    specs = [c for c in record.get("constraints", []) if not c["id"].startswith("cai:")]
    if not specs:
        return None
    return {
        "key": record["id"],
        "prompt": record["prompt"],
        "instruction_id_list": [c["id"] for c in specs],
        "kwargs": [c["kwargs"] for c in specs],
    }


def rows_with_responses(input_path: Path, responses_path: Path) -> list[dict[str, Any]]:
    """Rows of an IFEval file (or of a stage's held-out Instruction records) joined to their
    responses by exact prompt text; rows without a response are skipped."""
    answers = {r["prompt"]: r["response"] for r in _read_jsonl(responses_path)}
    rows = [_as_ifeval_row(r) for r in _read_jsonl(input_path)]
    return [{**r, "response": answers[r["prompt"]]} for r in rows if r and r["prompt"] in answers]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/ifeval_reference.py INPUT.jsonl RESPONSES.jsonl")
    score_both(rows_with_responses(Path(sys.argv[1]), Path(sys.argv[2])))
