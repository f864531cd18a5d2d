"""Model-written task sources of stages 2 and 3 on a scripted engine: what is kept and what is dropped
(with the reason), no repeats, held-out disjoint from training (the leakage check passes), and the
check of every kept item computes on a correct answer."""

import random
import re
from collections import Counter

import pytest

from cai_bootstrap.config import InstructionSettings
from cai_bootstrap.engines import Sampling
from cai_bootstrap.steps import instructions as step
from cai_bootstrap.tasks.constraints import check_instruction
from cai_bootstrap.tasks.curriculum import written
from cai_bootstrap.tasks.curriculum.stage3 import Family


class ScriptedWriter:
    """Answers each writing prompt from its last topic or list; `kinds` cycles through good and bad."""

    def __init__(self):
        self.calls = Counter()

    def generate(self, prompts, sampling: Sampling):
        assert sampling.stop == written.STOP and sampling.temperature > 0
        return [[self._one(p)] for p in prompts]

    def _one(self, prompt: str) -> str:
        if prompt.endswith("Passage:"):
            topic = re.findall(r"Topic: (.+)", prompt)[-1]
            n = self.calls[topic]
            self.calls[topic] += 1
            place = f"Vell{n}ra"
            text = _passage(topic, n, place)
            match n % 5:
                case 0 | 1:  # good: the answer is a span of the passage
                    return f"{text}\nQuestion: Near which town is it?\nAnswer: {place}"
                case 2:
                    return f"{text}\nQuestion: Who built it?\nAnswer: the king of Spain"
                case 3:
                    return f"{text}\nQuestion: It is near {place}\nAnswer: {place}"
                case 4:  # sample 0's text again: a repeat
                    return (
                        f"{_passage(topic, 0, 'Vell0ra')}\nQuestion: Near which town is it?\nAnswer: Vell0ra"
                    )
        if prompt.endswith("Category:"):
            n = self.calls["category"]
            self.calls["category"] += 1
            return [
                " a kind of boat\nExamples: canoe, kayak, raft, ferry",
                " colours\nExamples: red",
                f" tools {n}\nExamples: hammer, saw, drill",
            ][n % 3]
        n = self.calls["words"]
        self.calls["words"] += 1
        return f" lantern{'s' * n}\n- the river\n- 42 things\n- the river"


def _passage(topic: str, n: int, place: str) -> str:
    """A passage of words drawn per topic and sample, so different passages share few word runs."""
    rng = random.Random(f"{topic}-{n}")
    words = " ".join(
        f"{rng.choice('bcdfgklmnprst')}{rng.choice('aeiou')}{rng.choice('lmnrst')}o" for _ in range(16)
    )
    return f" {words.capitalize()} near {place}, about {topic}."


def _cfg(n_train=200, n_heldout=200) -> InstructionSettings:
    return InstructionSettings(n_train=n_train, n_heldout=n_heldout, model_written={"enabled": True})


def _sampling():
    return Sampling(temperature=0.9, max_new_tokens=64)


def test_stage2_written_passages_kept_and_dropped_with_reasons():
    items = written.write(ScriptedWriter(), 2, 5, 2, _sampling(), seed=0)
    assert len(items) == 5 * len(written.topics())
    reasons = Counter(i.reason for i in items if not i.kept)
    assert set(reasons) == {"answer is not a span of the passage", "question does not end with '?'", "repeat"}
    kept = [i for i in items if i.kept]
    assert len(kept) == 2 * len(written.topics())
    assert len({i.prompt for i in kept}) == len(kept)  # no repeats
    for i in kept:  # the check computes: the span is in the passage
        assert i.answers[0] in i.prompt.split("\n\n")[0]


def test_stage3_written_words_and_categories():
    items = written.write(ScriptedWriter(), 3, 3, 2, _sampling(), seed=0)
    reasons = Counter(i.reason for i in items if not i.kept)
    assert reasons["repeat"] >= 1 and reasons["not a plain word or two"] >= 1
    assert reasons["fewer than 3 examples"] >= 1
    seeds = written.seeds(items)
    assert {f for f, _ in seeds} == set(Family)
    pairs = [(f, s.x) for f, s in seeds]
    assert len(set(pairs)) == len(pairs)  # no repeats
    river = next(s for _, s in seeds if s.x == "the river")
    assert river.forms[:2] == ["river", "rivers"]  # an answer must use the word, not its article
    assert not any("42" in s.x for _, s in seeds)


@pytest.mark.parametrize("stage", [2, 3])
def test_written_items_split_disjoint_pass_the_leakage_check_and_their_checks_compute(stage):
    items = written.write(ScriptedWriter(), stage, 6, 2, _sampling(), seed=0)
    cfg = _cfg()
    held = step.heldout(cfg, 0, stage, written=items)
    out = step.run(cfg, 0, stage, 1, None, held, written=items)  # refuses any leakage itself
    train = out.instructions
    assert not {i.prompt for i in held} & {i.prompt for i in train}
    assert not {i.topic for i in held} & {i.topic for i in train}
    subjects = {s.x for _, s in written.seeds(items)}
    new = [i for i in held + train if ("Vell" in i.prompt if stage == 2 else i.topic in subjects)]
    assert new, "the written items reach the instructions"
    if stage == 2:
        for i in new:  # a correct answer (the span) passes the implied checks
            (answer,) = i.constraints[0].kwargs["answers"]
            implied = i.model_copy(update={"constraints": i.constraints[:2]})
            assert all(check_instruction(implied, answer))


def test_disabled_or_other_stages_take_nothing_written():
    from cai_bootstrap.errors import UserError
    from cai_bootstrap.tasks import curriculum

    items = written.write(ScriptedWriter(), 2, 1, 2, _sampling(), seed=0)
    with pytest.raises(UserError, match="stage 4 takes no model-written tasks"):
        curriculum.build(4, "train", 4, random.Random(0), written=items)
