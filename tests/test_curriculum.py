"""Curriculum stages 2-6: new checkers, builders (determinism, disjoint splits, checkable constraints
with a correct answer passing), deliberately broken answers, and the stage-6 red-team helpers."""

import logging
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cai_bootstrap.errors import UserError
from cai_bootstrap.records import ConstraintSpec, Instruction
from cai_bootstrap.steps.safety_eval import SafetyKind, load_eval_prompts
from cai_bootstrap.tasks import curriculum as cur
from cai_bootstrap.tasks.composer import load_base_tasks
from cai_bootstrap.tasks.constraints import check
from cai_bootstrap.tasks.curriculum import fallback, stage2, stage3, stage6
from cai_bootstrap.tasks.curriculum.breaking import BREAKERS
from cai_bootstrap.tasks.curriculum.common import make_instruction
from cai_bootstrap.tasks.leakage import check_leakage

STAGES = (2, 3, 4, 5, 6)
SPLITS = ("train", "heldout")
ALL = 10_000  # more than any stage has: builds everything


@pytest.fixture(scope="module")
def built() -> dict[tuple[int, str], list[Instruction]]:
    return {(s, sp): cur.build(s, sp, ALL, random.Random(f"{s}{sp}")) for s in STAGES for sp in SPLITS}


def _passes_all(inst: Instruction, text: str) -> bool:
    return all(check(c.id, c.kwargs, text, prompt=inst.task) for c in inst.constraints)


# --- checkers -------------------------------------------------------------------------------

CASES = [
    ("cai:contains_answer", {"answers": ["Paris"]}, "It is Paris.", True),
    ("cai:contains_answer", {"answers": ["Paris"]}, "the capital is  PARIS", True),
    ("cai:contains_answer", {"answers": ["Neil Armstrong", "Armstrong"]}, "Neil\n Armstrong did.", True),
    ("cai:contains_answer", {"answers": ["Paris"]}, "Parisian food is good.", False),
    ("cai:contains_answer", {"answers": ["8", "eight"]}, "It has 18 legs.", False),
    ("cai:choice", {"label": "A"}, "A", True),
    ("cai:choice", {"label": "A"}, "(A)", True),
    ("cai:choice", {"label": "A"}, "Answer A", True),
    ("cai:choice", {"label": "A"}, "A.", True),
    ("cai:choice", {"label": "A"}, "**A** is better because B has a comma.", True),
    ("cai:choice", {"label": "B"}, "The better reply is: B", True),
    ("cai:choice", {"label": "B"}, "I choose B", True),
    ("cai:choice", {"label": "A"}, "B", False),
    ("cai:choice", {"label": "A"}, "A or B", False),
    ("cai:choice", {"label": "B"}, "A and B", False),
    ("cai:choice", {"label": "A"}, "A/B", False),
    ("cai:choice", {"label": "A"}, "Both are fine.", False),
    ("cai:choice", {"label": "A"}, "A better answer would be B.", False),
    ("cai:choice", {"label": "A"}, "Answer B is better.", False),
    ("cai:yes_no", {"answer": "yes"}, "Yes.", True),
    ("cai:yes_no", {"answer": "yes"}, "**yes**, it follows every rule", True),
    ("cai:yes_no", {"answer": "no"}, "Answer: No", True),
    ("cai:yes_no", {"answer": "yes"}, "Yes, no commas are used.", True),
    ("cai:yes_no", {"answer": "yes"}, "No.", False),
    ("cai:yes_no", {"answer": "yes"}, "Yes and no.", False),
    ("cai:yes_no", {"answer": "no"}, "Nope", False),
    ("cai:yes_no", {"answer": "yes"}, "Yesterday it did.", False),
]


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), CASES)
def test_checker_cases(iid, kwargs, response, expected):
    assert check(iid, kwargs, response) is expected


def test_bad_labels_are_errors():
    with pytest.raises(UserError, match="not A or B"):
        check("cai:choice", {"label": "C"}, "C")
    with pytest.raises(UserError, match="not yes or no"):
        check("cai:yes_no", {"answer": "maybe"}, "maybe")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200) | st.sampled_from(["", "(", "A", "B)", "**", "yes/no", "Answer:"]))
def test_new_checkers_never_raise(text):
    for iid, kwargs in [
        ("cai:contains_answer", {"answers": ["Paris", "a b", ""]}),
        ("cai:choice", {"label": "A"}),
        ("cai:choice", {"label": "B"}),
        ("cai:yes_no", {"answer": "no"}),
    ]:
        for loose in (False, True):
            assert check(iid, kwargs, text, loose=loose) in (True, False)


# --- every stage ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_build_is_deterministic_with_stable_unique_ids(stage, built):
    for split in SPLITS:
        items = built[(stage, split)]
        assert items, (stage, split)
        again = cur.build(stage, split, ALL, random.Random(f"{stage}{split}"))
        assert [i.model_dump() for i in again] == [i.model_dump() for i in items]
        assert all(
            i.id.startswith(f"s{stage}-{split}-") and i.stage == stage and i.split == split for i in items
        )
        assert len({i.id for i in items}) == len(items) == len({i.prompt for i in items})


@pytest.mark.parametrize("stage", STAGES)
def test_splits_are_disjoint_without_near_duplicates(stage, built):
    train, held = built[(stage, "train")], built[(stage, "heldout")]
    assert not {i.task for i in train} & {i.task for i in held}
    report = check_leakage([h.prompt for h in held], [t.prompt for t in train], threshold=0.6)
    assert report.n_leaked == 0, report.summary()
    report = check_leakage([h.task for h in held], [t.task for t in train], threshold=0.6)
    assert report.n_leaked == 0, report.summary()


def test_training_prompts_stay_clear_of_other_evaluations(built):
    """No curriculum training prompt is near stage 1's held-out tasks or the safety evaluation."""
    evals = [t.text for t in load_base_tasks("heldout")]
    evals += [p.prompt for kind in SafetyKind for p in load_eval_prompts(kind)]
    for stage in (2, 3, 6):
        report = check_leakage(evals, [i.prompt for i in built[(stage, "train")]], threshold=0.6)
        assert report.n_leaked == 0, report.summary()


@pytest.mark.parametrize("stage", STAGES)
def test_constraints_are_checkable(stage, built):
    for inst in built[(stage, "train")] + built[(stage, "heldout")]:
        for c in inst.constraints:
            assert check(c.id, c.kwargs, "Some answer.", prompt=inst.task) in (True, False)


def test_n_limits_and_short_supply_warns(caplog):
    assert cur.build(2, "train", 0, random.Random(0)) == []
    assert len(cur.build(3, "train", 5, random.Random(0))) == 5
    with caplog.at_level(logging.WARNING, logger="cai_bootstrap"):
        items = cur.build(6, "heldout", ALL, random.Random(0))
    assert len(items) < ALL and "only" in caplog.text


def test_bad_calls_are_errors():
    with pytest.raises(UserError, match="no curriculum stage"):
        cur.build(7, "train", 1, random.Random(0))
    with pytest.raises(UserError, match="unknown split"):
        cur.build(2, "test", 1, random.Random(0))
    with pytest.raises(UserError, match="takes no earlier"):
        cur.build(2, "train", 1, random.Random(0), earlier=fallback.as_earlier())
    with pytest.raises(UserError, match="takes no generated"):
        cur.build(3, "train", 1, random.Random(0), generated=["x y z w"])
    assert set(cur.STAGE_TITLES) == set(STAGES)


# --- stage 2 --------------------------------------------------------------------------------


def _dressed(inst: Instruction, core: str) -> str:
    """`core` with the explicit extra constraints of stages 2-3 met."""
    for c in inst.constraints:
        if c.id == "cai:start_with":
            core = f"{c.kwargs['start_phrase']}. {core}"
    for c in inst.constraints:
        if c.id == "startend:end_checker":
            core = f"{core} {c.kwargs['end_phrase']}"
        if c.id == "startend:quotation":
            core = f'"{core}"'
    return core


def _usable(inst: Instruction, answers: list[str]) -> str:
    """An accepted answer that the no-digit or no-comma constraint of the item allows."""
    ids = {c.id for c in inst.constraints}
    return next(
        a
        for a in answers
        if not ("cai:no_digits" in ids and re.search(r"\d", a))
        and not ("punctuation:no_comma" in ids and "," in a)
    )


def test_stage2_sizes():
    kinds = [i.kind for i in stage2.load_items()]
    assert kinds.count("fact_question") >= 60
    assert len({i.topic for i in stage2.load_items() if i.kind == "passage_question"}) >= 25
    assert stage2.items("heldout") and len(stage2.items("train")) > 3 * len(stage2.items("heldout"))


def test_stage2_gold_answer_passes_and_wrong_answer_fails(built):
    gold = {i.prompt: i.answers for i in stage2.load_items()}
    items = built[(2, "train")] + built[(2, "heldout")]
    assert any(len(i.constraints) > 2 for i in items) and any(len(i.constraints) == 2 for i in items)
    for inst in items:
        # Implicit: the prompt shows only the question and any explicit stage-1 constraint.
        assert inst.prompt == " ".join([inst.task, *(c.text for c in inst.constraints[2:])])
        answer = _dressed(inst, f"{_usable(inst, gold[inst.task])}.")
        assert _passes_all(inst, answer), (inst.prompt, answer)
        assert not _passes_all(inst, _dressed(inst, "I am not sure about that."))


# --- stage 3 --------------------------------------------------------------------------------


def _stage3_answer(inst: Instruction) -> str:
    form = _usable(inst, inst.constraints[0].kwargs["answers"])
    extra = [w for c in inst.constraints if c.id == "keywords:existence" for w in c.kwargs["keywords"]]
    more = f" along with {' and '.join(extra)}" if extra else ""
    core = {
        "write_question": f"Why do people care about {form}{more}?",
        "write_example": f"One example is {form}{more}.",
        "write_sentence": f"She found the word {form} in a book{more}.",
    }[inst.task_kind]
    return _dressed(inst, core)


def test_stage3_sizes_and_gold_answers(built):
    assert len(stage3.seeds("train")) + len(stage3.seeds("heldout")) >= 40
    assert {f for f, _ in stage3.seeds("heldout")} == set(stage3.Family)
    for inst in built[(3, "train")] + built[(3, "heldout")]:
        answer = _stage3_answer(inst)
        assert _passes_all(inst, answer), (inst.prompt, answer)
        assert not _passes_all(inst, "Hello there.")


def test_stage3_plurals_count_as_examples():
    assert check("cai:contains_answer", {"answers": stage3.plurals("cherry")}, "Cherries are red.")


# --- break_answer ---------------------------------------------------------------------------


def test_break_answer_breaks_every_builtin_example():
    rng = random.Random(0)
    for inst, good in fallback.examples():
        assert _passes_all(inst, good)
        for c in inst.constraints:
            broken = cur.break_constraint(c, good, rng, inst.task)
            assert broken is not None, (c.id, good)
            assert not check(c.id, c.kwargs, broken, prompt=inst.task)
        broken = cur.break_answer(inst, good, rng)
        assert broken is not None and not _passes_all(inst, broken)
        assert cur.break_answer(inst, broken, rng) is None  # already failing: nothing to break


def test_breakers_of_curriculum_types():
    rng = random.Random(1)
    cases = [
        (ConstraintSpec(id="cai:contains_answer", kwargs={"answers": ["Paris"]}, text=""), "It is Paris."),
        (ConstraintSpec(id="cai:choice", kwargs={"label": "A"}, text=""), "A"),
        (ConstraintSpec(id="cai:yes_no", kwargs={"answer": "no"}, text=""), "No."),
        (ConstraintSpec(id="startend:quotation", kwargs={}, text=""), '"Quoted words here."'),
        (
            ConstraintSpec(id="length_constraints:number_paragraphs", kwargs={"num_paragraphs": 1}, text=""),
            "One paragraph only.",
        ),
    ]
    for c, good in cases:
        assert check(c.id, c.kwargs, good)
        broken = cur.break_constraint(c, good, rng)
        assert broken is not None and not check(c.id, c.kwargs, broken), c.id
    assert {c.id for c, _ in cases} <= set(BREAKERS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200), pick=st.integers(min_value=0, max_value=100))
def test_break_answer_never_raises_and_only_breaks(text, pick):
    inst, _ = fallback.examples()[pick % len(fallback.examples())]
    broken = cur.break_answer(inst, text, random.Random(pick))
    assert broken is None or (_passes_all(inst, text) and not _passes_all(inst, broken))


# --- stages 4 and 5 -------------------------------------------------------------------------

CHOICE_RE = re.compile(r"(?:Answer|Reply) A: (.*)\n\n(?:Answer|Reply) B: (.*)\n\n[^\n]*\Z", re.DOTALL)
DRAFT_RE = re.compile(r"\n\n(?:Answer|Draft|Reply): (.*)\Z", re.DOTALL)
YES_NO_RE = re.compile(r"(?:Answer|Reply): (.*)\n\n[^\n]*\Z", re.DOTALL)


def _source(inst: Instruction) -> Instruction:
    return next(e for e, _ in fallback.examples() if e.task == inst.task)


def test_stage4_labels_match_the_checker(built):
    items = built[(4, "train")] + built[(4, "heldout")]
    labels = {
        (i.task_kind, c.kwargs.get("label", c.kwargs.get("answer"))) for i in items for c in i.constraints
    }
    assert labels == {
        ("judge_choice", "A"),
        ("judge_choice", "B"),
        ("judge_yes_no", "yes"),
        ("judge_yes_no", "no"),
    }
    for inst in items:
        (c,) = inst.constraints
        source = _source(inst)
        if c.id == "cai:choice":
            a, b = CHOICE_RE.search(inst.prompt).groups()
            assert _passes_all(source, a) == (c.kwargs["label"] == "A") != _passes_all(source, b)
            wrong = {"A": "B", "B": "A"}[c.kwargs["label"]]
            assert check(c.id, c.kwargs, c.kwargs["label"]) and not check(c.id, c.kwargs, wrong)
        else:
            (answer,) = YES_NO_RE.search(inst.prompt).groups()
            assert _passes_all(source, answer) == (c.kwargs["answer"] == "yes")
            wrong = {"yes": "No.", "no": "Yes."}[c.kwargs["answer"]]
            assert check(c.id, c.kwargs, c.kwargs["answer"].capitalize()) and not check(c.id, c.kwargs, wrong)


def _composed(split: str, task: str, specs: list[ConstraintSpec]) -> Instruction:
    prompt = " ".join([task, *(s.text for s in specs)])
    return make_instruction(1, split, prompt, task, "describe", "test", specs)


NO_COMMA = ConstraintSpec(id="punctuation:no_comma", kwargs={}, text="Do not use any commas.")
END = ConstraintSpec(
    id="startend:end_checker", kwargs={"end_phrase": "That is all."}, text='End with "That is all."'
)


def test_stage4_prefers_real_failing_answers_and_trusts_the_checker(caplog):
    inst = _composed("heldout", "Describe a windmill.", [NO_COMMA, END])
    good, bad = "A windmill turns in the wind. That is all.", "A windmill, old and tall, turns. That is all."
    earlier = [(inst, good, True), (inst, bad, True)]  # the second flag is wrong on purpose
    with caplog.at_level(logging.WARNING, logger="cai_bootstrap"):
        items = cur.build(4, "heldout", 10, random.Random(0), earlier=earlier)
    assert "disagrees" in caplog.text
    choice = next(i for i in items if i.task_kind == "judge_choice")
    a, b = CHOICE_RE.search(choice.prompt).groups()
    assert {a, b} == {good, bad}
    assert cur.build(4, "train", 10, random.Random(0), earlier=earlier) == []  # held-out stays held-out


def test_stage5_revision_meeting_all_constraints_passes(built):
    items = built[(5, "train")] + built[(5, "heldout")]
    assert len(items) >= 20
    good = {inst.task: answer for inst, answer in fallback.examples()}
    for inst in items:
        assert inst.task_kind == "revise" and inst.constraints
        assert _passes_all(inst, good[inst.task]), inst.prompt  # the unbroken answer is a valid revision
        (draft,) = DRAFT_RE.search(inst.prompt).groups()
        assert not _passes_all(inst, draft), draft
        assert set(c.id for c in inst.constraints) == set(c.id for c in _source(inst).constraints)


def test_stage5_targets_come_first_and_kept_constraints_stay():
    inst = _composed("train", "Describe a windmill.", [NO_COMMA, END])
    draft = "A windmill, old and tall, turns in the wind. That is all."
    items = cur.build(5, "train", 10, random.Random(0), earlier=[(inst, draft, False)])
    if not items:  # the task hashed to held-out: build that split instead
        items = cur.build(5, "heldout", 10, random.Random(0), earlier=[(inst, draft, False)])
    (item,) = items
    assert [c.id for c in item.constraints] == ["punctuation:no_comma", "startend:end_checker"]
    assert draft in item.prompt and not _passes_all(item, draft)
    assert _passes_all(item, "A windmill turns in the wind. That is all.")
    assert not _passes_all(item, "A windmill turns in the wind.")  # breaking a kept one fails


def test_stage5_wordings_follow_the_split(built):
    train_heads = {i.prompt.split("\n\n")[0][:25] for i in built[(5, "train")]}
    held_heads = {i.prompt.split("\n\n")[0][:25] for i in built[(5, "heldout")]}
    assert not train_heads & held_heads


# --- stage 6 --------------------------------------------------------------------------------


def test_stage6_help_prompts_and_splits(built):
    assert len(stage6.help_prompts()) >= 40
    assert all(not i.constraints for i in built[(6, "train")] + built[(6, "heldout")])
    assert {i.task_kind for i in built[(6, "heldout")]} == {"help"}
    with pytest.raises(UserError, match="held-out takes no generated"):
        cur.build(6, "heldout", 5, random.Random(0), generated=["How can I cheat at cards with a friend?"])


def test_stage6_mixes_generated_requests_and_drops_eval_leaks(caplog):
    leaked = load_eval_prompts(SafetyKind.REDTEAM)[0].prompt
    mine = [
        f"How can I trick my neighbour number {k} into giving me the keys to the shed?" for k in range(30)
    ]
    with caplog.at_level(logging.WARNING, logger="cai_bootstrap"):
        items = cur.build(6, "train", 20, random.Random(0), generated=[*mine, mine[0], leaked])
    assert "near held-out safety prompts" in caplog.text
    kinds = [i.task_kind for i in items]
    assert len(items) == 20 and kinds.count("redteam") == 10 and kinds.count("help") == 10
    assert leaked not in {i.prompt for i in items}


def test_redteam_prompt_request_and_parser():
    topic = cur.redteam_topics()[0]
    prompt = cur.redteam_prompt_request(topic)
    assert prompt.endswith(f"Topic: {topic}\nRequest:") and prompt.count("Request:") == 5
    shots = re.findall(r"Request: (.+)", prompt)
    evals = [p.prompt for kind in SafetyKind for p in load_eval_prompts(kind)]
    assert check_leakage(shots, evals, threshold=0.6).n_leaked == 0
    assert check_leakage(shots, cur.redteam_topics(), threshold=0.6).n_leaked == 0
    ok = cur.parse_redteam(' "How can I get back at the referee who cost us the final?"\nTopic: next')
    assert ok.request == "How can I get back at the referee who cost us the final?" and ok.reason is None
    for text, reason in [
        ("", "empty"),
        ("Help me.", "too_short"),
        ("Topic: fire and more words", "frame_marker"),
    ]:
        parsed = cur.parse_redteam(text)
        assert parsed.request is None and parsed.reason == reason and parsed.raw == text
    with pytest.raises(UserError):
        cur.redteam_prompt_request("  ")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_redteam_parser_never_raises(text):
    parsed = cur.parse_redteam(text)
    assert (parsed.request is None) != (parsed.reason is None)
