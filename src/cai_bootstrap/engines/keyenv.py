"""Which environment variable may hold the key the openai engine sends, and where it goes.

The engine sends `$<model.openai.api_key_env>` as a Bearer token to `model.openai.base_url`, and both
come from the recipe: a recipe received from someone else could name any variable (a cloud secret)
and any server. So the variable must be named like an API key (ending in _API_KEY or _TOKEN) unless
the user allows another by name on the command line (`run --allow-key-env NAME`), and the host that
receives it is printed when the run starts.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import UserError

KEY_SUFFIXES = ("_API_KEY", "_TOKEN")
_allowed: set[str] = set()  # names the user allowed with --allow-key-env, for this process


def allow(names: list[str]) -> None:
    _allowed.update(names)


def check(name: str, where: str = "model.openai.api_key_env") -> None:
    """Refuse a variable name that does not look like an API key's (and was not allowed)."""
    if name.endswith(KEY_SUFFIXES) or name in _allowed:
        return
    raise UserError(
        f"{where} = {name!r}: the engine would send that variable's value to the server; only names "
        f"ending in {' or '.join(KEY_SUFFIXES)} are sent",
        f"rename the variable (e.g. MY_SERVER_API_KEY), or allow it: run --allow-key-env {name}",
    )


def base_url(configured: str | None) -> str | None:
    return configured or os.environ.get("OPENAI_BASE_URL")


def destination(configured: str | None, key_env: str) -> str:
    """One line: which host receives requests, and whether a key goes with them."""
    url = base_url(configured) or "(no URL set)"
    host = urlsplit(url).hostname or url
    key = f"with the key in ${key_env}" if os.environ.get(key_env) else f"without a key (${key_env} unset)"
    return f"openai engine: requests go to host {host} {key}"
