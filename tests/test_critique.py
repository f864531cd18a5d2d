import re

import pytest

from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.records import ConstraintSpec, Instruction, Response
from cai_bootstrap.steps import critique
from cai_bootstrap.steps.critique import (
    CritiqueSelect,
    CritiqueSettings,
    RejectReason,
    ReviseWhen,
    RevisionStatus,
    Verdict,
    parse_critique,
    parse_revision,
)
from cai_bootstrap.templates import REVISION_END

NO_COMMA = ConstraintSpec(id="punctuation:no_comma", text="Do not use any commas.")


def _instruction(iid="i1", constraints=(NO_COMMA,)) -> Instruction:
    return Instruction(
        id=iid,
        stage=1,
        split="train",
        prompt="Describe a cat. Do not use any commas.",
        task="Describe a cat.",
        task_kind="explain",
        topic="cats",
        constraints=list(constraints),
    )


def _response(rid, text, passed, iid="i1", sample=0) -> Response:
    return Response(
        id=rid, instruction_id=iid, sample=sample, text=text, passed=passed, all_passed=all(passed)
    )


def no_comma_check(instruction, text):
    """A scripted checker the code really calls: one bool per constraint, 'no comma' semantics."""
    return ["," not in text for _ in instruction.constraints]


ORIGINAL = "A cat is a small furry animal that likes to sleep in the sun all day long."


def _revise(body: str) -> str:
    return f" {body}\n{REVISION_END}\n"


@pytest.mark.parametrize(
    "raw, status, reason",
    [
        (" KEEP_ORIGINAL\n" + REVISION_END, RevisionStatus.KEEP, None),
        (_revise("Here is a revised answer: cats sleep a lot and purr."), RevisionStatus.REJECTED, "meta"),
        (_revise("I could make the answer shorter by removing words."), RevisionStatus.REJECTED, "meta"),
        (_revise("The response should mention that cats purr softly."), RevisionStatus.REJECTED, "meta"),
        (
            _revise("Cats purr. Compared with the original answer this is better."),
            RevisionStatus.REJECTED,
            "meta",
        ),
        (
            _revise("Cats purr softly and sleep in warm spots.\nInstruction: Next"),
            RevisionStatus.REJECTED,
            "leak",
        ),
        (_revise("Cats purr softly and sleep.\nCritique: fine"), RevisionStatus.REJECTED, "leak"),
        (_revise("Cats purr softly.\n\nRevision: more"), RevisionStatus.REJECTED, "leak"),
        (" Cats are small furry animals that sleep most of the day and", RevisionStatus.REJECTED, "cut"),
        (_revise("Cats."), RevisionStatus.REJECTED, "short"),
        (_revise("Cats are small, furry and sleepy animals."), RevisionStatus.REJECTED, "regress"),
        (_revise(ORIGINAL), RevisionStatus.KEEP, None),
        (
            _revise("A cat is a small furry animal that naps in sunny spots and purrs."),
            RevisionStatus.REVISED,
            None,
        ),
    ],
)
def test_parse_revision_cases(raw, status, reason):
    reasons = {
        "meta": RejectReason.META_COMMENTARY,
        "leak": RejectReason.MARKER_LEAK,
        "cut": RejectReason.TRUNCATED,
        "short": RejectReason.TOO_SHORT,
        "regress": RejectReason.CONSTRAINT_REGRESSION,
    }
    parsed = parse_revision(raw, ORIGINAL, _instruction(), original_passed=[True], check=no_comma_check)
    assert parsed.raw == raw  # raw text is always kept
    assert parsed.status is status
    assert parsed.reason is (reasons[reason] if reason else None)
    assert (parsed.text is not None) == (status is RevisionStatus.REVISED)


def test_legit_first_person_and_the_answer_are_not_meta():
    for body in [
        "I could not sleep that night because the cat purred loudly.",
        "The answer is Jupiter, the giant.",
    ]:
        parsed = parse_revision(_revise(body), "x" * 10, _instruction(constraints=()), check=no_comma_check)
        assert parsed.status is RevisionStatus.REVISED, parsed


def test_regression_only_counts_constraints_the_original_met():
    # The original broke the constraint too, so a revision that still breaks it is not a regression.
    parsed = parse_revision(
        _revise("Cats are small, furry animals that purr."),
        "Cats, cats, cats.",
        _instruction(),
        original_passed=[False],
        check=no_comma_check,
    )
    assert parsed.status is RevisionStatus.REVISED


def test_regression_with_the_real_constraint_checker():
    pytest.importorskip("cai_bootstrap.tasks.constraints")
    parsed = parse_revision(_revise("Cats are small, furry and sleepy animals."), ORIGINAL, _instruction())
    assert parsed.reason is RejectReason.CONSTRAINT_REGRESSION and "punctuation:no_comma" in parsed.detail
    ok = parse_revision(
        _revise("Cats are small furry and sleepy animals that purr."), ORIGINAL, _instruction()
    )
    assert ok.status is RevisionStatus.REVISED


def test_parse_critique_verdicts():
    assert parse_critique(" It uses a comma.\nVerdict: PROBLEM\n").verdict is Verdict.PROBLEM
    ok = parse_critique(" All good.\nVerdict: OK")
    assert ok.verdict is Verdict.OK and ok.critique == "All good."
    assert parse_critique(" rambling with no verdict").verdict is Verdict.UNCLEAR
    assert parse_critique(" x\nVerdict: maybe").verdict is Verdict.UNCLEAR


class ScriptedEngine:
    """Answers critique prompts and revision prompts from a script keyed by the answer under review."""

    def __init__(self, script: dict[str, tuple[str, str]]):
        self.script = script
        self.calls: list[tuple[str, int]] = []

    def generate(self, prompts, sampling):
        out = []
        for p in prompts:
            answer = re.findall(r"^Response: (.*)$", p, re.MULTILINE)[-1]
            critique_out, revision_out = self.script[answer]
            kind = "revision" if p.endswith("Revision:") else "critique"
            assert p.endswith("Critique:") or kind == "revision"
            self.calls.append((kind, sampling.max_new_tokens))
            out.append([revision_out if kind == "revision" else critique_out])
        return out

    def logprobs(self, prompts, continuations):
        raise AssertionError("critique does not score")


def test_run_revises_only_problems_and_fills_records():
    ins = [_instruction()]
    responses = [
        _response("r0", "Cats, in short, are nice pets to have.", [False], sample=0),
        _response("r1", "Cats are nice pets that love warm naps.", [True], sample=1),
        _response("r2", "Cats, cats and more cats everywhere today.", [False], sample=2),
        _response("r3", "Cats, my friend, like fish very much indeed.", [False], sample=3),
    ]
    fixed = "Cats are nice pets to have and they purr."
    engine = ScriptedEngine(
        {
            responses[0].text: (" Uses commas.\nVerdict: PROBLEM\n", _revise(fixed)),
            responses[2].text: (" Fine.\nVerdict: OK\n", "unused"),
            responses[3].text: (
                " Commas.\nVerdict: PROBLEM",
                _revise("Here is a revised answer without commas."),
            ),
            fixed: (" Good now.\nVerdict: OK", "unused"),
        }
    )
    cfg = CritiqueSettings(
        select=CritiqueSelect.FAILING, rounds=2, max_items=None, critique_max_new_tokens=50
    )
    out = critique.run(cfg, ins, responses, load_constitution(None), engine, check=no_comma_check)
    assert [r.id for r in out.revisions] == ["r0~r1"]
    rev = out.revisions[0]
    assert (rev.origin, rev.parent_id, rev.text, rev.passed, rev.all_passed) == (
        "revision",
        "r0",
        fixed,
        [True],
        True,
    )
    assert rev.principle_id in {p.id for p in load_constitution(None).principles}
    status = {(c.response_id, c.round): (c.status, c.reject_reason) for c in out.critiques}
    assert status == {
        ("r0", 1): (RevisionStatus.REVISED, None),
        ("r2", 1): (RevisionStatus.KEEP, None),
        ("r3", 1): (RevisionStatus.REJECTED, RejectReason.META_COMMENTARY),
        ("r0~r1", 2): (RevisionStatus.KEEP, None),  # round 2 critiques the revision
    }
    assert sum(out.principle_usage.values()) == 4
    # r1 passes its constraint, so FAILING never critiques it; revision prompts use their own budget.
    assert ("critique", 50) in engine.calls and ("revision", cfg.max_new_tokens) in engine.calls
    assert len([c for c in engine.calls if c[0] == "critique"]) == 4


def test_revise_always_asks_for_a_revision_whatever_the_verdict():
    ins = [_instruction()]
    responses = [
        _response("r0", "Cats, in short, are nice pets to have.", [False], sample=0),
        _response("r1", "Cats, my friend, like fish very much indeed.", [False], sample=1),
    ]
    fixed = "Cats are nice pets to have and they purr."
    engine = ScriptedEngine(
        {
            responses[0].text: (" Fine.\nVerdict: OK\n", _revise(fixed)),
            responses[1].text: (" no verdict line at all", _revise("Cats like fish very much indeed.")),
        }
    )
    cfg = CritiqueSettings(select=CritiqueSelect.FAILING, max_items=None, revise=ReviseWhen.ALWAYS)
    out = critique.run(cfg, ins, responses, load_constitution(None), engine, check=no_comma_check)
    assert [kind for kind, _ in engine.calls].count("revision") == 2
    assert sorted(r.parent_id for r in out.revisions) == ["r0", "r1"]
    assert {c.status for c in out.critiques} == {RevisionStatus.REVISED}


def test_selection_modes_and_cap():
    ins = [_instruction("i1"), _instruction("i2", constraints=())]
    responses = [
        _response("a", "x", [True], "i1"),
        _response("b", "x", [False], "i1"),
        _response("c", "x", [], "i2"),
    ]

    def pick(**kw):
        chosen = critique.select(CritiqueSettings(max_items=None, **kw), ins, responses)
        return [it.current.id for it in chosen]

    assert pick(select=CritiqueSelect.ALL) == ["a", "b", "c"]
    assert pick(select=CritiqueSelect.FAILING) == ["b"]
    assert pick(select=CritiqueSelect.FAILING_OR_UNVERIFIED) == ["b", "c"]
    capped = critique.select(CritiqueSettings(select=CritiqueSelect.ALL, max_items=2, seed=3), ins, responses)
    assert len(capped) == 2


def test_disabled_does_nothing():
    out = critique.run(CritiqueSettings(enabled=False), [_instruction()], [], load_constitution(None), None)
    assert out.revisions == [] and out.critiques == []
