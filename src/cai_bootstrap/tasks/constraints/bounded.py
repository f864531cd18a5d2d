"""Regular expressions that come from input files, matched in bounded time.

IFEval reads keywords, postscript markers and section splitters as regular expressions, so a file
can hold a catastrophic one (`(a+)+$` against forty a's and a b backtracks for hours) and Python's
`re` cannot be interrupted. The `regex` package matches with the same (V0, re-compatible) semantics
and takes a `timeout`; a pattern that runs past it stops scoring with one line naming the pattern,
rather than being scored either way (a guessed verdict would be a silent fallback).
"""

from __future__ import annotations

import regex

from ...errors import UserError

TIME_LIMIT_S = 1.0  # a normal keyword on a long answer takes microseconds; this is 10^5 times that


def _fail(pattern: str) -> UserError:
    return UserError(
        f"the regular expression {pattern!r} took over {TIME_LIMIT_S:g} s on one answer "
        "(catastrophic backtracking)",
        "IFEval reads keywords as regular expressions: simplify or escape it in the IFEval file",
    )


def compile_check(pattern: str) -> None:
    """Raise regex.error when `pattern` does not compile under the engine that will match it."""
    regex.compile(pattern, flags=regex.V0)


def search(pattern: str, text: str, flags: int = 0):
    try:
        return regex.search(pattern, text, flags=flags | regex.V0, timeout=TIME_LIMIT_S)
    except TimeoutError as e:
        raise _fail(pattern) from e


def findall(pattern: str, text: str, flags: int = 0) -> list:
    try:
        return regex.findall(pattern, text, flags=flags | regex.V0, timeout=TIME_LIMIT_S)
    except TimeoutError as e:
        raise _fail(pattern) from e


def split(pattern: str, text: str, flags: int = 0) -> list:
    try:
        return regex.split(pattern, text, flags=flags | regex.V0, timeout=TIME_LIMIT_S)
    except TimeoutError as e:
        raise _fail(pattern) from e
