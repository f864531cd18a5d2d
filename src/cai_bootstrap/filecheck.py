"""The files a recipe or a command names, checked before anything runs: an IFEval-format file row by
row (fields, keys, instruction ids and their arguments, without scoring), a {prompt, response} file,
and any text file read as UTF-8 with one clear line when it is missing, a folder or unreadable.
Moved out of preflight.py (which re-exports these names) to keep it under 400 lines."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from .errors import UserError
from .inputcheck import check_finite_kwargs


def check_ifeval_file(path: Path, what: str) -> int:
    """An IFEval-format input file, checked row by row (fields, instruction ids, their arguments)
    without scoring anything; returns its number of prompts. `what` names the option or key."""
    from .tasks.constraints import checker_kwargs
    from .tasks.ifeval import IFEvalRow, resolve_letters

    text = read_text_file(path, what, "an IFEval-format JSONL file")
    rows = 0
    keys: dict[str, int] = {}  # key -> line: rows become records with id ifeval-<key>, so keys must differ
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{what} {path}:{n}"
        try:
            row = IFEvalRow.model_validate_json(line)
        except ValidationError as e:
            raise _row_error(e, where) from e
        if str(row.key) in keys:
            raise UserError(
                f"{where}: key {row.key!r} was already used on line {keys[str(row.key)]}",
                "give every row its own key",
            )
        keys[str(row.key)] = n
        if len(row.instruction_id_list) != len(row.kwargs):
            raise UserError(
                f"{where}: {len(row.instruction_id_list)} instruction ids but {len(row.kwargs)} kwargs",
                "give one kwargs object per instruction id",
            )
        row = resolve_letters(row)[0]  # scored with a seeded draw, as tasks/ifeval.py documents
        check_finite_kwargs(row.kwargs, where)
        for i, tid in enumerate(row.instruction_id_list):
            try:
                checker_kwargs(tid, row.kwargs_for(i), row.prompt)
            except UserError as e:
                raise UserError(f"{where}: {e.cause}", e.fix) from e
        rows += 1
    if not rows:
        raise UserError(f"{what} {path} has no prompts", "pass a non-empty IFEval-format JSONL file")
    return rows


def check_responses_file(path: Path, what: str) -> None:
    """A {prompt, response} JSONL file, every row readable (scoring reports unanswered prompts)."""
    from .tasks.ifeval import ResponseRow

    text = read_text_file(path, what, "a {prompt, response} JSONL file")
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                ResponseRow.model_validate_json(line)
            except ValidationError as e:
                raise _row_error(e, f"{what} {path}:{n}", "prompt, response") from e


def _row_error(
    err: ValidationError, where: str, fields: str = "key, prompt, instruction_id_list, kwargs"
) -> UserError:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        return UserError(f"{where}: field '{field}' is missing", f"each row needs {fields}")
    if first["type"].startswith("json"):
        return UserError(f"{where}: not valid JSON ({first['msg']})", "write one JSON object per line")
    return UserError(f"{where}: field '{field or '(row)'}': {first['msg']}", f"each row needs {fields}")


def read_text_file(path: Path, what: str, kind: str) -> str:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist", f"give the path of {kind}")
    if not path.is_file():
        raise UserError(f"{what} {path} is a folder, not a file", f"give the path of {kind}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from e
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read: {e.strerror}", "check its permissions") from e
