"""Errors the CLI turns into one clear line and an exit code.

UserError (exit 2): bad input the user can fix (recipe, key, path, model name, empty data).
GateFailed (exit 3): a stage missed its gate; the report is still written.
StepFailed (exit 1): a step broke at run time (NaN loss, zero records, timeout).
"""


class CaiError(Exception):
    exit_code = 1

    def __init__(self, cause: str, fix: str = ""):
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}" + (f" ({fix})" if fix else ""))

    def one_line(self) -> str:
        return _flat(f"error: {self.cause}" + (f" -> {self.fix}" if self.fix else ""))


def _flat(text: str) -> str:
    """One line, whatever the cause carries (a library's multi-line message, a YAML error's excerpt)."""
    return " ".join(text.split())


class UserError(CaiError):
    exit_code = 2


class StepFailed(CaiError):
    exit_code = 1


class GateFailed(CaiError):
    exit_code = 3

    def one_line(self) -> str:
        return _flat(self.cause)
