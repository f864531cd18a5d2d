"""Health gates (health.py): each fires on a scripted engine that produces the failing pattern, with a
message that names the counts and the setting to change; healthy output passes."""

import re
from collections import Counter

import pytest

from cai_bootstrap import health
from cai_bootstrap.config import InstructionSettings, ResponseSettings
from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.engines import Completion
from cai_bootstrap.errors import StepFailed
from cai_bootstrap.records import ConstraintSpec, Instruction, Response
from cai_bootstrap.steps import critique, responses
from cai_bootstrap.steps import instructions as instructions_step
from cai_bootstrap.steps.critique import CritiqueSettings
from cai_bootstrap.store import Step

NO_COMMA = ConstraintSpec(id="punctuation:no_comma", text="Do not use any commas.")


def _instructions(n: int) -> list[Instruction]:
    return [
        Instruction(
            id=f"i{j}",
            stage=1,
            split="train",
            prompt=f"Describe animal number {j}. Do not use any commas.",
            task=f"Describe animal number {j}.",
            task_kind="explain",
            topic="animals",
            constraints=[NO_COMMA],
        )
        for j in range(n)
    ]


class Scripted:
    """Answers every prompt with `answer(prompt, sample)`, ending as `reason` says."""

    def __init__(self, answer, reason="stop"):
        self.answer, self.reason = answer, reason

    def generate(self, prompts, sampling):
        return [[Completion(self.answer(p, j), self.reason) for j in range(sampling.n)] for p in prompts]

    def logprobs(self, prompts, continuations):
        return [-1.0 for _ in prompts]

    def count_tokens(self, text):
        return len(text.split())


def _responses(tmp_path, engine, **settings):
    cfg = ResponseSettings(k=2, max_new_tokens=16, chunk=4, **settings)
    return responses.run(cfg, _instructions(10), engine, Step(tmp_path / "responses", {}), seed=0)


def test_answers_that_all_run_out_of_tokens_stop_the_run(tmp_path):
    engine = Scripted(lambda p, j: f"1. 2. 3. 4. {p[-60:]} {j}", reason="length")
    with pytest.raises(StepFailed, match=r"20 of 20 answers ran out of tokens .*max_truncated_fraction=0.9"):
        _responses(tmp_path, engine)


def test_one_answer_for_every_prompt_stops_the_run(tmp_path):
    engine = Scripted(lambda p, j: "1. 2. 3. 4. 5.")
    with pytest.raises(
        StepFailed, match=r"one answer text \('1. 2. 3. 4. 5.'\) was given to 10 of 10 prompts"
    ):
        _responses(tmp_path, engine)


def test_healthy_answers_and_explicit_loosening_pass(tmp_path):
    out = _responses(tmp_path / "a", Scripted(lambda p, j: f"{p.splitlines()[-2][-30:]} is calm ({j})."))
    assert len(out) == 20 and not any(r.truncated for r in out)
    loosened = _responses(
        tmp_path / "b",
        Scripted(lambda p, j: "same", reason="length"),
        max_truncated_fraction=1.0,
        max_same_answer_fraction=1.0,
    )
    assert len(loosened) == 20


def test_too_few_pairs_or_examples_stop_the_run():
    dropped = Counter({"tie_no_judge": 15, "identical": 6})
    with pytest.raises(StepFailed, match=r"6 preference pairs \(< pairs.min_pairs=8; .*tie_no_judge 15"):
        health.check_training_data(6, 100, 8, 8, dpo_on=True, sft_on=True, dropped=dropped)
    with pytest.raises(StepFailed, match=r"2 SFT examples \(< sft.min_examples=8\)"):
        health.check_training_data(100, 2, 8, 8, dpo_on=True, sft_on=True, dropped=dropped)
    # A disabled step needs nothing.
    health.check_training_data(0, 0, 8, 8, dpo_on=False, sft_on=False, dropped=dropped)


class NoVerdictCritic:
    """A critic that never writes a verdict line (as a broken model does)."""

    def generate(self, prompts, sampling):
        return [[Completion("1. 2. 3. 4. 5. 6. 7.", "length")] for _ in prompts]

    def logprobs(self, prompts, continuations):
        raise AssertionError("critique does not score")


def test_every_critique_rejected_stops_the_run():
    ins = _instructions(3)
    resp = [
        Response(
            id=f"r{j}",
            instruction_id=f"i{j}",
            sample=0,
            text="A cat, a dog.",
            passed=[False],
            all_passed=False,
        )
        for j in range(3)
    ]
    cfg = CritiqueSettings(max_items=3, shots=1)
    with pytest.raises(StepFailed, match=r"all 3 critiques or revisions were rejected"):
        critique.run(cfg, ins, resp, load_constitution(None), NoVerdictCritic())
    out = critique.run(
        cfg.model_copy(update={"stop_if_all_rejected": False}),
        ins,
        resp,
        load_constitution(None),
        NoVerdictCritic(),
    )
    assert len(out.critiques) == 3 and all(c.status.value == "rejected" for c in out.critiques)


def test_self_instruct_that_accepts_nothing_stops_the_run():
    cfg = InstructionSettings(n_train=4, n_heldout=4)
    cfg.self_instruct.n_tasks, cfg.self_instruct.max_rounds, cfg.self_instruct.prompts_per_round = 2, 1, 2
    held = instructions_step.heldout(cfg, 0, 1)
    engine = Scripted(lambda p, j: "1. 2. 3. 4. 5.")
    with pytest.raises(
        StepFailed,
        match=re.escape("self-instruct accepted 0 new tasks (< instructions.self_instruct.min_accepted=1)"),
    ):
        instructions_step.run(cfg, 0, 1, 1, engine, held)
