"""Named groups of constraint types, and the leave-types-out split (issue 26, item 3).

A recipe names a group as 'group:NAME' in `instructions.constraint_types` or
`instructions.heldout_only_types`. Types listed in `heldout_only_types` never reach a training
instruction (composed, self-instruct or curriculum, hence no pair or SFT example either): they
are dropped from the training types, and `assert_types_apart` fails the round if one shows up,
by id or by its wording. The held-out set then gets extra items whose every constraint is
held-out-only, so the report can show the gain on trained and on never-trained types apart.
"""

from __future__ import annotations

import re

from ..errors import StepFailed, UserError
from ..records import Instruction
from .composer import constraint_types_default
from .phrasings import PHRASINGS

# Our own types (constraints/chars.py, counting.py, positions.py, structure.py, copying.py).
TRANSFER_TYPES = (
    "cai:no_letter",
    "cai:max_chars",
    "cai:ascii_only",
    "cai:max_word_length",
    "cai:exclaim_end",
    "cai:sentences_capitalized",
    "cai:alliteration",
    "cai:exact_sentences",
    "cai:sentence_max_words",
    "cai:max_word_repeats",
    "cai:exact_commas",
    "cai:question_count",
    "cai:line_count",
    "cai:digit_numbers",
    "cai:keyword_first_sentence",
    "cai:keyword_last_sentence",
    "cai:keyword_order",
    "cai:nth_word",
    "cai:same_first_last_word",
    "cai:acrostic",
    "cai:labeled_lines",
    "cai:markdown_headings",
    "cai:parenthetical",
    "cai:quoted_phrases",
    "cai:step_lines",
    "cai:keyword_caps",
    "cai:spelled_out",
    "cai:bracketed_keyword",
    "cai:same_first_last_sentence",
    "cai:either_keyword",
)
# Two types from each family, each with a trained sibling of a related skill (first vs last
# sentence, caps vs brackets, line count vs step lines...), easy ones and hard ones: transfer
# then means a skill carried over to a new type, not a new skill from nothing.
HELDOUT_DEFAULT = (
    "cai:no_letter",
    "cai:max_word_length",
    "cai:sentence_max_words",
    "cai:line_count",
    "cai:keyword_first_sentence",
    "cai:same_first_last_word",
    "cai:labeled_lines",
    "cai:quoted_phrases",
    "cai:keyword_caps",
    "cai:either_keyword",
)
TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    "stage1-default": tuple(constraint_types_default()),
    "transfer-all": TRANSFER_TYPES,
    "transfer-heldout": HELDOUT_DEFAULT,
    "transfer-train": tuple(t for t in TRANSFER_TYPES if t not in HELDOUT_DEFAULT),
}
GROUP_PREFIX = "group:"
# A wording fragment shorter than this could occur in ordinary task text ('in your answer').
MIN_FRAGMENT = 20


def expand_types(names: list[str]) -> list[str]:
    """Type ids with each 'group:NAME' replaced by its members, in order, without repeats."""
    out: list[str] = []
    for name in names:
        if name.startswith(GROUP_PREFIX):
            group = TYPE_GROUPS.get(name.removeprefix(GROUP_PREFIX))
            if group is None:
                raise UserError(
                    f"unknown constraint type group {name!r}",
                    f"use one of: {', '.join(GROUP_PREFIX + g for g in TYPE_GROUPS)}",
                )
            out += group
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def heldout_only_types(cfg) -> list[str]:
    """The instruction settings' held-out-only types, groups expanded."""
    return expand_types(cfg.heldout_only_types)


def training_types(cfg) -> list[str]:
    """The types training instructions may carry: the configured (or default) list, groups
    expanded, less every held-out-only type."""
    banned = set(heldout_only_types(cfg))
    return [t for t in expand_types(cfg.constraint_types or constraint_types_default()) if t not in banned]


def _wordings(t: str) -> tuple[str, ...]:
    return (*PHRASINGS[t].train, *PHRASINGS[t].heldout)


def fragments(types: list[str]) -> list[str]:
    """The longest literal piece of every wording (train and held-out) of `types`, lowercased,
    keeping only pieces that no wording of another type contains (', no more and no fewer.' is
    shared, so it proves nothing)."""
    chosen = set(types)
    others = [w.lower() for t in PHRASINGS if t not in chosen for w in _wordings(t)]
    out = []
    for t in types:
        for template in _wordings(t):
            piece = max(re.split(r"\{[^}]*\}", template), key=len).strip().lower()
            if len(piece) >= MIN_FRAGMENT and not any(piece in w for w in others):
                out.append(piece)
    return out


def wording_hit(text: str, pieces: list[str]) -> str | None:
    """The first of `pieces` found in `text` (case-insensitive), or None."""
    low = text.lower()
    return next((p for p in pieces if p in low), None)


def assert_types_apart(instructions: list[Instruction], heldout_only: list[str]) -> None:
    """StepFailed when a training instruction carries a held-out-only type or its wording."""
    if not heldout_only:
        return
    banned, pieces = set(heldout_only), fragments(heldout_only)
    for ins in instructions:
        hit = next((c.id for c in ins.constraints if c.id in banned), None) or wording_hit(ins.prompt, pieces)
        if hit:
            raise StepFailed(
                f"held-out-only constraint type in training data: {hit!r} in instruction {ins.id}",
                "remove the type from instructions.constraint_types or from heldout_only_types, then rerun",
            )


def check_type_settings(cfg, where: str) -> None:
    """Before any model runs: groups exist, every type can be composed, and training keeps some
    types once the held-out-only ones are removed. UserError naming the key otherwise."""
    for key in ("constraint_types", "heldout_only_types"):
        try:
            types = expand_types(getattr(cfg, key) or [])
        except UserError as e:
            raise UserError(f"{where}.{key}: {e.cause}", e.fix) from e
        unknown = [t for t in types if t not in PHRASINGS]
        if unknown:
            raise UserError(
                f"{where}.{key}: unknown constraint type {unknown[0]!r}", "see tasks/phrasings.py"
            )
    if not training_types(cfg):
        raise UserError(
            f"{where}: every training constraint type is in heldout_only_types",
            "keep some types for training, or hold out fewer",
        )
