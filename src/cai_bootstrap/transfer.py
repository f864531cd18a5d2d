"""Leave-types-out transfer (issue 26, item 3): baseline vs trained on the held-out items of the
types training used, and apart on the items of the types it never saw (`heldout_only_types`).

An item counts as "held-out types" when every one of its constraints is held-out-only, as
"trained types" when none is; a mixed item counts in neither group and only in `n_mixed` (the
composer never makes one: held-out-only items are composed from held-out-only types alone, but an
item written by hand could be). Each group gets prompt-level strict and loose rates with Wilson
intervals and McNemar's test against the baseline (stats.compare), plus per-type rows.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .records import EvalItem
from .stats import Comparison, compare


class TypeGroup(StrEnum):
    TRAINED = "trained types"
    HELDOUT = "held-out types"
    MIXED = "mixed"


def group_of(constraint_ids: list[str], heldout_only: set[str]) -> TypeGroup:
    held = [c in heldout_only for c in constraint_ids]
    if held and all(held):
        return TypeGroup.HELDOUT
    return TypeGroup.MIXED if any(held) else TypeGroup.TRAINED


class GroupComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: TypeGroup = Field(description="trained types or held-out types")
    n_items: int = Field(description="paired held-out items in this group")
    prompt_strict: Comparison = Field(description="prompt-level strict, baseline vs trained")
    prompt_loose: Comparison = Field(description="prompt-level loose, baseline vs trained")


class TransferResult(BaseModel):
    """Gain on trained types and on never-trained types, measured apart on the same held-out set."""

    model_config = ConfigDict(extra="forbid")
    heldout_only_types: list[str] = Field(description="the types no training instruction carried")
    n_mixed: int = Field(0, description="items with both kinds of type, counted in neither group")
    groups: list[GroupComparison] = Field(default_factory=list, description="trained, then held-out types")


def transfer_comparison(
    base: list[EvalItem], trained: list[EvalItem], heldout_only: list[str]
) -> TransferResult | None:
    """The two groups' comparisons; None when no type is held out (nothing to tell apart)."""
    if not heldout_only:
        return None
    # Imported here: evaluate pulls in the engines, and results.py (which imports this module)
    # is read by the report, which needs none of them.
    from .steps.evaluate import paired

    held = set(heldout_only)
    by_id = {it.instruction_id: group_of(it.constraint_ids, held) for it in base}
    groups, n_mixed = [], sum(g is TypeGroup.MIXED for g in by_id.values())
    for group in (TypeGroup.TRAINED, TypeGroup.HELDOUT):
        b = [it for it in base if by_id[it.instruction_id] is group]
        t = [it for it in trained if by_id.get(it.instruction_id) is group]
        if not b or not t:
            continue
        rows = {m: compare(*paired(b, t, m)) for m in ("prompt_strict", "prompt_loose")}
        n = rows["prompt_strict"].mcnemar.n
        groups.append(GroupComparison(group=group, n_items=n, **rows))
    return TransferResult(heldout_only_types=list(heldout_only), n_mixed=n_mixed, groups=groups)
