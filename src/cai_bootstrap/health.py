"""Health gates between steps: a step whose output cannot feed the next one stops the run here, with
the counts and the setting to change, instead of training on nothing.

A broken model (wrong tokenizer, collapsed weights) still "finishes" every step: all answers cut off at
max_new_tokens, one answer text for every prompt, no pair, every critique without a verdict. These
checks turn such outputs into one clear line. Thresholds live in the steps' settings; tiny random-weight
test models set them explicitly.

Every threshold is declared `signature_exempt` with `GATE_EXEMPT`: the gate decides whether a step's
output may go on, not what it is, so loosening a gate after it fired (what its message tells the user
to do) resumes the failed step under the same signature instead of sampling everything again. The
price: a finished step is not re-checked when its gate is tightened later.
"""

from __future__ import annotations

from collections import Counter

from .errors import StepFailed
from .records import Response

GATE_EXEMPT = "a health gate: it decides whether the step's output may go on, not what that output is"


def _fail(what: str, fix: str) -> None:
    raise StepFailed(what, fix)


def check_answers(responses: list[Response], max_truncated: float, max_same: float, where: str) -> None:
    """Answers must mostly end on their own and must differ between prompts.

    max_truncated: largest allowed share of answers cut off at the token limit.
    max_same: largest allowed share of distinct prompts that got one identical answer text.
    """
    if not responses:
        return
    truncated = sum(r.truncated for r in responses)
    if truncated / len(responses) > max_truncated:
        _fail(
            f"{where}: {truncated} of {len(responses)} answers ran out of tokens "
            f"({truncated / len(responses):.0%} > {where}.max_truncated_fraction={max_truncated})",
            "the model does not stop (check the model canary, the frame's stop strings), or raise "
            f"{where}.max_new_tokens",
        )
    prompts: dict[str, set[str]] = {}
    for r in responses:
        prompts.setdefault(" ".join(r.text.split()), set()).add(r.instruction_id)
    n_prompts = len({r.instruction_id for r in responses})
    text, ids = max(prompts.items(), key=lambda kv: len(kv[1]))
    if n_prompts > 1 and len(ids) / n_prompts > max_same:
        _fail(
            f"{where}: one answer text ({text[:40]!r}) was given to {len(ids)} of {n_prompts} prompts "
            f"({len(ids) / n_prompts:.0%} > {where}.max_same_answer_fraction={max_same})",
            "the model ignores its prompts: check the model canary and the generator",
        )


def check_training_data(
    n_pairs: int, n_sft: int, min_pairs: int, min_sft: int, dpo_on: bool, sft_on: bool, dropped: Counter
) -> None:
    """Enough preference pairs for DPO and enough examples for SFT, for the steps that are enabled."""
    reasons = ", ".join(f"{r} {n}" for r, n in dropped.most_common()) or "none formed"
    if dpo_on and n_pairs < min_pairs:
        _fail(
            f"pairs: {n_pairs} preference pairs (< pairs.min_pairs={min_pairs}; candidate pairs dropped: "
            f"{reasons})",
            "raise responses.k or instructions.n_train, loosen the pair filters, or set dpo.enabled: false",
        )
    if sft_on and n_sft < min_sft:
        _fail(
            f"pairs: {n_sft} SFT examples (< sft.min_examples={min_sft})",
            "raise responses.k or instructions.n_train, or set sft.enabled: false",
        )


def check_critiques(n_critiques: int, n_rejected: int, stop_if_all_rejected: bool) -> None:
    """A critic that produces nothing usable on any answer is broken, not strict."""
    if stop_if_all_rejected and n_critiques > 0 and n_rejected == n_critiques:
        _fail(
            f"critique: all {n_critiques} critiques or revisions were rejected",
            "read critique/critiques.jsonl (reject_reason); set critique.enabled: false if the model "
            "cannot critique yet, or critique.stop_if_all_rejected: false",
        )


def check_self_instruct(enabled: bool, accepted: int, min_accepted: int) -> None:
    if enabled and accepted < min_accepted:
        _fail(
            f"instructions: self-instruct accepted {accepted} new tasks "
            f"(< instructions.self_instruct.min_accepted={min_accepted})",
            "the log lists why proposals were rejected; lower min_accepted, raise max_rounds, or set "
            "instructions.self_instruct.enabled: false",
        )
