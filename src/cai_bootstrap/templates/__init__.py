"""Few-shot completion-mode prompt templates (Jinja2) for critique, revision and the A/B judge.

The templates are plain text for a base model: no chat template, no special tokens. Examples are
separated by a line starting with SEPARATOR, which also serves as the generation stop string.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import jinja2

# Each example in every template begins with this line; a base model that finishes one entry
# starts the next with it, so generation stops there.
SEPARATOR = "=== Example"
STOP = [f"\n{SEPARATOR}"]
VERDICT_PROBLEM = "PROBLEM"
VERDICT_OK = "OK"
KEEP_ORIGINAL = "KEEP_ORIGINAL"
# Written after every revision in the shots; a revision without it was cut by max_new_tokens
# (or wandered off), because the engine removes stop strings but not this line.
REVISION_END = "[end of revision]"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cai_bootstrap", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(name: str, **context) -> str:
    """Render templates/<name>.j2 with the shared markers available to it."""
    markers = {
        "SEPARATOR": SEPARATOR,
        "PROBLEM": VERDICT_PROBLEM,
        "OK": VERDICT_OK,
        "KEEP_ORIGINAL": KEEP_ORIGINAL,
        "REVISION_END": REVISION_END,
    }
    return _environment().get_template(f"{name}.j2").render(**markers, **context)


def template_hash(*names: str) -> str:
    """Hash of the named template files, for step signatures (a template edit invalidates the cache)."""
    h = hashlib.sha256()
    for name in names:
        h.update(resources.files(__package__).joinpath(f"{name}.j2").read_bytes())
    return h.hexdigest()[:16]
