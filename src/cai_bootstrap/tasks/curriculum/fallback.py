"""Built-in (instruction, good answer) examples that stand in for earlier answers in stages 4 and 5.

The pipeline passes real, verified answers from earlier stages. When it passes none (a unit test, a
run that starts at stage 4), these hand-written examples (data/examples.yaml) are used instead; each
answer is checked against its constraints on load, and a failing one is a data error.
"""

from __future__ import annotations

from functools import cache

from pydantic import ValidationError

from ...errors import UserError
from ...records import ConstraintSpec, Instruction
from .common import load_data, make_instruction, passes, split_of


def _example(entry: dict) -> tuple[Instruction, str]:
    try:
        specs = [ConstraintSpec.model_validate(c) for c in entry["constraints"]]
    except ValidationError as e:
        raise UserError(f"data/examples.yaml: bad constraint in {entry.get('task')!r}: {e}") from e
    task, answer = entry["task"].strip(), entry["answer"].strip()
    prompt = " ".join([task, *(c.text for c in specs)])
    split = split_of(task, "examples")
    inst = make_instruction(1, split, prompt, task, entry["kind"], entry["topic"], specs)
    failed = [c.id for c in specs if not passes(c, answer, task)]
    if failed:
        raise UserError(f"built-in example {task!r}: its answer fails {failed[0]}", "fix data/examples.yaml")
    return inst, answer


@cache
def examples() -> tuple[tuple[Instruction, str], ...]:
    """All built-in examples as (instruction, passing answer); the instruction's split is a hash of
    its task, so stages 4 and 5 keep held-out examples out of training."""
    out = tuple(_example(e) for e in load_data("examples.yaml")["examples"])
    if len({inst.task for inst, _ in out}) != len(out):
        raise UserError("data/examples.yaml repeats a task", "remove the copy")
    return out


def as_earlier() -> list[tuple[Instruction, str, bool]]:
    """The examples in the `earlier` format of stages 4 and 5: every answer passes."""
    return [(inst, answer, True) for inst, answer in examples()]
