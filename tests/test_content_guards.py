"""Content guards (issue 26): hand-written answers that restate, repeat, stub, copy or wander off are
dropped with their reason, where pairs, SFT targets and revisions are chosen; good answers are kept."""

from __future__ import annotations

import math
import re

import pytest

from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.engines import Capabilities
from cai_bootstrap.errors import UserError
from cai_bootstrap.records import ConstraintSpec, Instruction, Response
from cai_bootstrap.steps import content_guards, critique, pairs
from cai_bootstrap.steps.content_guards import ContentGuardSettings
from cai_bootstrap.steps.critique import CritiqueSelect, CritiqueSettings, RejectReason, RevisionStatus
from cai_bootstrap.steps.pair_records import DropReason
from cai_bootstrap.steps.pair_stats import pair_stats
from cai_bootstrap.tasks import content_checks as cc
from cai_bootstrap.tasks import frame
from cai_bootstrap.templates import REVISION_END
from tiny import tiny_canary

CONSTITUTION = load_constitution(None)
KEYWORD = ConstraintSpec(id="keywords:existence", kwargs={"keywords": ["garden"]}, text="Include 'garden'.")
GOOD = (
    "Bees collect nectar from flowers, carry it back to the hive in a garden, and pass it between "
    "workers until the water evaporates and it thickens into honey."
)
SUNRISE = next(ex.revision for p in CONSTITUTION.principles for ex in p.examples if "sunrise" in ex.prompt)


def _instruction(constraints=(KEYWORD,), kind="describe", prompt=None) -> Instruction:
    return Instruction(
        id="i1",
        stage=1,
        split="train",
        prompt=prompt or "Describe how bees make honey. Include the keyword 'garden'.",
        task="Describe how bees make honey.",
        task_kind=kind,
        topic="bees",
        constraints=list(constraints),
    )


def _response(rid: str, text: str, passed: bool, sample: int = 0) -> Response:
    return Response(id=rid, instruction_id="i1", sample=sample, text=text, passed=[passed], all_passed=passed)


BAD = {
    "echo": (
        "Describe how bees make honey. Include the keyword garden. Describe how bees make honey.",
        "echo",
    ),
    "rule talk": ('Bees: * Do not use the words "nectar" or "hive" in your response. garden', "echo"),
    "rule recital": (
        '* Visit a garden.\n* Use the word "simple" in your sentences.\n* Be kind to bees.',
        "echo",
    ),
    "repeated lines": ("Bees make honey in a garden.\n" * 3 + "They are busy.", "repetition"),
    "repeated n-grams": ("bees make honey in the garden " * 6, "repetition"),
    "highlight stubs": ("*highlight* bees *highlight* garden *highlight*", "placeholder"),
    "bracket stub": (
        "Bees make honey in the garden by [insert process here] every day of the year.",
        "placeholder",
    ),
    "one-word bullets": ("* nectar\n* garden\n* hive", "placeholder"),
    "copied frame shot": (frame.SHOTS[2][1].replace("Sleep", "garden"), "copied_exemplar"),
    "copied constitution": (SUNRISE + " garden", "copied_exemplar"),
    "too short": ("garden honey", "no_content"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_each_guard_names_its_reason(name):
    text, reason = BAD[name]
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION)
    why = content_guards.answer_problem(guard, _instruction(), text)
    assert why is not None and why[0] == DropReason(reason), (name, why)


def test_a_good_answer_passes_every_guard():
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION)
    assert content_guards.answer_problem(guard, _instruction(), GOOD) is None
    # a plain list request may be answered with short bullets
    listing = _instruction(kind="list", prompt="List three flowers bees visit.")
    assert content_guards.answer_problem(guard, listing, "* clover\n* lavender\n* sunflowers") is None


def test_what_a_request_asks_for_is_not_a_problem():
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION)
    task = "Describe how bees make honey."
    repeat = ConstraintSpec(
        id="combination:repeat_prompt", kwargs={"prompt_to_repeat": task}, text="First repeat the task."
    )
    ins = _instruction((repeat,), prompt=f"{task} First repeat the task sentence word for word.")
    assert content_guards.answer_problem(guard, ins, f"{task} {GOOD}") is None
    slots = ConstraintSpec(
        id="detectable_content:number_placeholders", kwargs={"num_placeholders": 1}, text="x"
    )
    ins = _instruction((slots,))
    assert content_guards.answer_problem(guard, ins, GOOD + " Ask [name] for more.") is None
    words = ConstraintSpec(id="cai:max_words", kwargs={"max_words": 3}, text="Use at most 3 words.")
    assert content_guards.answer_problem(guard, _instruction((words,)), "Nectar becomes honey.") is None
    span = ConstraintSpec(id="cai:contains_answer", kwargs={"answers": ["bees make honey"]}, text="x")
    assert content_guards.answer_problem(guard, _instruction((span,)), "bees make honey") is None
    at_least = ConstraintSpec(
        id="length_constraints:number_sentences",
        kwargs={"num_sentences": 1, "relation": "at least"},
        text="x",
    )
    assert content_guards.answer_problem(guard, _instruction((at_least,)), "Nectar becomes honey.") is None
    quoted = _instruction(prompt='Describe how bees make honey. End with "Thank you for reading."')
    assert cc.echo_overlap(quoted.prompt, "Thank you for reading.") == 0.0


def test_an_upper_bound_does_not_excuse_a_two_word_poem():
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION)
    fewer = ConstraintSpec(
        id="length_constraints:number_sentences",
        kwargs={"num_sentences": 5, "relation": "less than"},
        text="x",
    )
    poem = _instruction((fewer,), kind="poem", prompt="Write a short poem about a snowy mountain.")
    assert content_guards.answer_problem(guard, poem, '"Snowy mountain"')[0] is DropReason.NO_CONTENT
    few_words = ConstraintSpec(
        id="length_constraints:number_words", kwargs={"num_words": 5, "relation": "less than"}, text="x"
    )
    assert content_guards.answer_problem(guard, _instruction((few_words,)), "Nectar becomes honey.") is None


def test_short_answers_are_no_echo_or_copy():
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION)
    yes_no = ConstraintSpec(id="cai:yes_no", kwargs={"answer": "yes"}, text="Answer yes or no.")
    ins = _instruction((yes_no,), kind="fact_question", prompt="Do bees make honey? Answer yes or no.")
    assert content_guards.answer_problem(guard, ins, "Yes.") is None
    assert cc.copy_overlap("Yes.", guard.exemplar_grams) == 0.0


def test_thresholds_are_settings():
    off = ContentGuardSettings(max_echo=None, max_repeated_lines=None, max_repeated_ngrams=None)
    guard = content_guards.make_guard(off, CONSTITUTION)
    for name in ("echo", "repeated lines", "repeated n-grams"):
        assert content_guards.answer_problem(guard, _instruction(), BAD[name][0]) is None, name
    assert content_guards.make_guard(ContentGuardSettings(enabled=False), CONSTITUTION) is None


def _relevance(table: dict[str, float]):
    calls = []

    def score(items):
        calls.append(len(items))
        return [table[a] for _, a in items]

    return score, calls


OFF_TOPIC = "A laptop is portable and runs on a battery while a desktop stays in the garden study."


def test_pairs_drop_a_bad_chosen_with_its_reason_and_keep_a_good_one():
    ins = [_instruction()]
    echo_text = BAD["echo"][0]
    rel, calls = _relevance({GOOD: 1.2, echo_text: 3.0, OFF_TOPIC: -0.6, "Bees are insects.": 0.4})
    responses = [
        _response("good", GOOD, True, 0),
        _response("echo", echo_text, True, 1),
        _response("off", OFF_TOPIC, True, 2),
        _response("fail", "Bees are insects.", False, 3),
    ]
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION, rel)
    out = pairs.run(pairs.PairSettings(pairs_per_instruction=4), ins, responses, None, guard=guard)
    assert [(p.chosen_id, p.rejected_id) for p in out.pairs] == [("good", "fail")]
    reasons = {(d.a_id, d.b_id): (d.reason, d.detail) for d in out.dropped}
    assert reasons[("echo", "fail")][0] is DropReason.ECHO
    assert reasons[("off", "fail")][0] is DropReason.LESS_RELEVANT
    assert "-0.60 vs rejected +0.40" in reasons[("off", "fail")][1]
    assert calls == [3]  # one batch of the distinct answers (good, off, fail); the echo is not scored
    assert out.stats.dropped_by_reason["echo"] == 1 and out.stats.dropped_by_reason["less_relevant"] == 1
    funnel = {s.filter: s.dropped for s in out.stats.funnel}
    assert funnel["echo"] == 1 and funnel["less_relevant"] == 1


def test_sft_targets_pass_the_guards_and_refusals_are_recorded():
    ins = [_instruction()]
    responses = [
        _response("echo", BAD["echo"][0], True, 0),
        _response("off", OFF_TOPIC, True, 1),
        _response("good", GOOD, True, 2),
    ]
    rel, _ = _relevance({GOOD: 1.2, OFF_TOPIC: -0.6})
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION, rel)
    kept, refused = pairs.sft_candidates(guard, ins, responses)
    sft = pairs.sft_examples(ins, kept)
    assert [e.completion.strip().split("\n")[0] for e in sft] == [GOOD]
    assert {(d.a_id, d.reason, d.target) for d in refused} == {
        ("echo", DropReason.ECHO, "sft"),
        ("off", DropReason.LESS_RELEVANT, "sft"),
    }
    stats = pair_stats([], refused, [])
    assert stats.candidates == 0 and stats.sft_refused_by_reason == {"echo": 1, "less_relevant": 1}


class ScriptedEngine:
    """Critiques every answer as a PROBLEM and revises it with the scripted text."""

    def __init__(self, revision: str):
        self.revision = revision

    def generate(self, prompts, sampling):
        return [
            [f" {self.revision}\n{REVISION_END}\n" if p.endswith("Revision:") else " Bad.\nVerdict: PROBLEM"]
            for p in prompts
        ]


ORIGINAL = "Bees fly around and that is honey."


@pytest.mark.parametrize(
    "revision, status, detail",
    [
        (SUNRISE, RevisionStatus.REJECTED, "copied_exemplar"),
        (OFF_TOPIC, RevisionStatus.REJECTED, "less_relevant: relevance -0.60 vs original +0.40"),
        (GOOD, RevisionStatus.REVISED, ""),
    ],
)
def test_a_revision_must_pass_the_guards_to_count_as_revised(revision, status, detail):
    ins = [_instruction(())]
    responses = [_response("r0", ORIGINAL, True)]
    rel, calls = _relevance({ORIGINAL: 0.4, GOOD: 1.2, OFF_TOPIC: -0.6})
    guard = content_guards.make_guard(ContentGuardSettings(), CONSTITUTION, rel)
    out = critique.run(
        CritiqueSettings(select=CritiqueSelect.ALL, max_items=None, stop_if_all_rejected=False),
        ins,
        responses,
        CONSTITUTION,
        ScriptedEngine(revision),
        check=lambda i, t: [],
        guard=lambda items: content_guards.revision_problems(guard, items),
    )
    (rec,) = out.critiques
    assert rec.status is status and rec.detail.startswith(detail)
    if status is RevisionStatus.REJECTED:
        assert rec.reject_reason is RejectReason.CONTENT_GUARD and out.revisions == []
    assert calls == ([] if revision == SUNRISE else [2])  # original and revision, one batch


class PMIEngine:
    """logprobs: -1 per request token after no answer, -0.25 per token after an answer naming bees."""

    capabilities = Capabilities(prompt_logprobs=True, native_n=True, token_ids=False)

    def count_tokens(self, text):
        return len(text.split())

    def logprobs(self, prompts, continuations):
        self.calls = getattr(self, "calls", 0) + 1
        out = []
        for p, c in zip(prompts, continuations, strict=True):
            answer = re.match(r"Answer: ?(.*)\nThe request this answers:$", p, re.DOTALL).group(1)
            out.append(len(c.split()) * (-0.25 if "bees" in answer.lower() else -1.0))
        return out


def test_relevance_is_the_request_likelihood_gained_per_token_in_one_call():
    engine = PMIEngine()
    scores = cc.relevance_scorer(engine)([("How do bees fly?", "Bees flap."), ("How do bees fly?", "Cars.")])
    assert scores == [pytest.approx(0.75), pytest.approx(0.0)] and engine.calls == 1


def test_an_engine_that_cannot_score_stops_with_the_settings_to_change():
    engine = PMIEngine()
    engine.capabilities = Capabilities(prompt_logprobs=False, native_n=True, token_ids=False)
    with pytest.raises(UserError, match="pairs.guards.relevance: false"):
        cc.relevance_scorer(engine)


def test_relevance_runs_on_a_real_model(tiny_model_dir):
    from cai_bootstrap.engines.hf import HFEngine

    engine = HFEngine.from_path(tiny_model_dir, "float32", "cpu", 4, canary=tiny_canary())
    scores = cc.relevance_scorer(engine)(
        [("Describe the sea.", "The sea is wide."), ("Describe the sea.", "")]
    )
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    assert scores[1] == pytest.approx(0.0, abs=1e-4)  # no answer adds nothing
