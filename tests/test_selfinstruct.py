import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cai_bootstrap.engines import Sampling
from cai_bootstrap.errors import UserError
from cai_bootstrap.records import BaseTask
from cai_bootstrap.tasks import selfinstruct as si
from cai_bootstrap.tasks.selfinstruct import Reason, SelfInstructSettings, line_problem, parse_continuation

TOPICS = ["science", "food"]
KINDS = ["explain", "list"]
SEEDS = [
    BaseTask(id="s0", text="Describe how bees make honey.", kind="explain", topic="science"),
    BaseTask(id="s1", text="List three fruits that grow on trees.", kind="list", topic="food"),
    BaseTask(id="s2", text="Write a short story about a lost dog.", kind="story", topic="science"),
    BaseTask(id="s3", text="Explain why the sky is blue.", kind="explain", topic="science"),
]
HELDOUT = ["Explain how volcanoes erupt and why some are explosive."]
SCRIPT = [
    " Describe how bees make honey!\n"  # exact duplicate of a seed
    "6. [science / explain] Describe how bees make their honey.\n"  # near duplicate of a seed
    "7. [science / explain] Explain how volcanoes erupt and why some of them are explosive.\n"  # held-out
    "8. [food / list] List five spices used in Indian cooking.\n"  # accepted
    "9. [food / list] List five spices used in Indian cooking!\n"  # duplicate within the round
    "10. [nope / list] Name a colour of the rainbow.\n"  # unknown topic tag
    "some trailing garbage",  # not a numbered item
    " Explain how to build a weapon at home.\n"  # the critic says No
    "6. [science / list] List the planets of the solar system in order.\n"  # accepted
    "7. [food / explain] Explain why bread rises when it is baked.\n"  # accepted (third: target met)
    "8. [food / explain] Explain why onions make people cry when cut.\n"  # surplus
    "9. [science / explain] Too short.",  # too short
]
MARGINS = {"Explain how to build a weapon at home.": -2.0}


class ScriptedEngine:
    """Returns scripted continuations in call order; the critic's margin is looked up per task."""

    def __init__(self, script: list[str], margins: dict[str, float]):
        self.script, self.margins = list(script), margins
        self.generate_calls: list[tuple[list[str], Sampling]] = []
        self.logprob_calls: list[tuple[list[str], list[str]]] = []

    def generate(self, prompts, sampling):
        self.generate_calls.append((prompts, sampling))
        return [[self.script.pop(0) if self.script else "" for _ in range(sampling.n)] for _ in prompts]

    def logprobs(self, prompts, continuations):
        self.logprob_calls.append((prompts, continuations))
        out = []
        for p, c in zip(prompts, continuations, strict=True):
            task = re.findall(r"Request: (.*)\n", p)[-1]
            out.append(self.margins.get(task, 1.0) - 3.0 if c == " Yes" else -3.0)
        return out


def _cfg(**kw) -> SelfInstructSettings:
    base = dict(n_tasks=3, max_rounds=1, prompts_per_round=2, samples_per_prompt=1, examples_per_prompt=3)
    return SelfInstructSettings(**(base | kw))


def _run(cfg=None, script=SCRIPT, margins=MARGINS, exclude=HELDOUT):
    engine = ScriptedEngine(script, margins)
    out = si.run(cfg or _cfg(), SEEDS, engine, TOPICS, KINDS, exclude=exclude)
    return out, engine


def test_run_filters_dedups_and_accounts_for_every_candidate():
    out, engine = _run()
    assert [t.text for t in out.tasks] == [
        "List five spices used in Indian cooking.",
        "List the planets of the solar system in order.",
        "Explain why bread rises when it is baked.",
    ]
    assert [(t.topic, t.kind, t.source) for t in out.tasks][0] == ("food", "list", "self_instruct")
    assert all(t.id == si.task_id(t.text) and t.id.startswith("si-") for t in out.tasks)
    reasons = {r.text.strip(): r.reason for r in out.rejected}
    assert reasons["Describe how bees make honey!"] == Reason.DUPLICATE
    assert reasons["Describe how bees make their honey."] == Reason.NEAR_DUPLICATE
    assert reasons["Explain how volcanoes erupt and why some of them are explosive."] == Reason.HELDOUT
    assert reasons["List five spices used in Indian cooking!"] == Reason.DUPLICATE
    assert reasons["10. [nope / list] Name a colour of the rainbow."] == Reason.BAD_TAG
    assert reasons["some trailing garbage"] == Reason.NOT_AN_ITEM
    assert reasons["Explain how to build a weapon at home."] == Reason.CRITIC
    assert reasons["Explain why onions make people cry when cut."] == Reason.SURPLUS
    assert reasons["Too short."] == Reason.TOO_SHORT
    s = out.stats
    assert s["candidates"] == 12 and s["accepted"] == 3 and s["rejected"] == 9
    assert s["accepted"] + s["rejected"] == s["candidates"] == len(out.tasks) + len(out.rejected)
    assert sum(s["rejected_by_reason"].values()) == s["rejected"] and s["target_met"]
    # The critic scored only what survived the line filters, held-out exclusion and seed dedup.
    assert s["critic_scored"] == 6
    ((prompts, conts),) = engine.logprob_calls
    assert conts == [" Yes"] * 6 + [" No"] * 6 and prompts[:6] == prompts[6:]
    assert prompts[2].endswith("Request: Explain how to build a weapon at home.\nClear, feasible and safe:")


def test_prompts_are_numbered_lists_ending_on_the_hint():
    _, engine = _run()
    ((prompts, sampling),) = engine.generate_calls
    assert sampling.stop == si.STOP and sampling.n == 1 and sampling.temperature == 0.9
    for p in prompts:
        items = re.findall(r"^(\d+)\. \[(\w+) / (\w+)\]", p, flags=re.M)
        assert [int(n) for n, _, _ in items] == [1, 2, 3, 4]  # 3 examples, then the hinted item
        assert (items[-1][1], items[-1][2]) in {(t, k) for t in TOPICS for k in KINDS}
        assert p.endswith("]")


def test_deterministic_and_seed_sensitive():
    a, ea = _run()
    b, eb = _run()
    assert a == b and ea.generate_calls[0][0] == eb.generate_calls[0][0]
    _, ec = _run(_cfg(seed=1))
    assert ec.generate_calls[0][0] != ea.generate_calls[0][0]


def test_heldout_seeds_are_never_shown_and_heldout_candidates_dropped():
    cfg = _cfg(examples_per_prompt=8, prompts_per_round=4)
    out, engine = _run(cfg, exclude=[*HELDOUT, "Describe how bees make honey, step by step."])
    assert out.stats["seeds_hidden_as_heldout"] == 1 and out.stats["seed_examples"] == 3
    assert not any("bees make honey" in p for p in engine.generate_calls[0][0])
    # Held-out exclusion runs before seed dedup: the seed copy now counts as held-out overlap.
    reasons = {r.text.strip(): r.reason for r in out.rejected}
    assert reasons["Describe how bees make honey!"] == Reason.HELDOUT
    assert reasons["Describe how bees make their honey."] == Reason.NEAR_DUPLICATE


def test_critic_threshold_and_accepted_examples_in_later_rounds():
    script = [" List five spices used in Indian cooking.", " List four kinds of clouds and how they form."]
    margins = {"List five spices used in Indian cooking.": 0.4}
    cfg = _cfg(critic_margin=0.5, prompts_per_round=1, max_rounds=3, n_tasks=5, generated_examples=1)
    out, engine = _run(cfg, script=script, margins=margins)
    assert [t.text for t in out.tasks] == ["List four kinds of clouds and how they form."]
    assert out.rejected[0].reason == Reason.CRITIC and "0.400" in out.rejected[0].detail
    assert out.stats["rounds"] == 3 and not out.stats["target_met"]
    assert out.stats["rejected_by_reason"] == {"critic": 1, "empty": 1}
    # Once a task is accepted, the next round shows it among the examples.
    assert "List four kinds of clouds" in engine.generate_calls[2][0][0]


def test_disabled_and_bad_inputs():
    assert si.run(_cfg(enabled=False), SEEDS, None, TOPICS, KINDS, exclude=[]).stats == {"enabled": False}
    with pytest.raises(UserError):
        si.run(_cfg(), SEEDS, None, [], KINDS, exclude=[])
    with pytest.raises(UserError):
        si.run(_cfg(), SEEDS, None, ["a/b"], KINDS, exclude=[])
    with pytest.raises(UserError):
        si.run(_cfg(), SEEDS[:1], None, TOPICS, KINDS, exclude=[])
    with pytest.raises(ValueError):
        SelfInstructSettings(unknown=1)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", Reason.EMPTY),
        ("Response: Write a poem about rain.", Reason.FRAME_MARKER),
        ("Read https://example.com and summarise it.", Reason.FRAME_MARKER),
        ("Écrivez un poème sur la pluie à Paris.", Reason.NON_ENGLISH),
        ("List list list the things here.", Reason.JUNK),
        ("1234 5678 9999 0000 1111.", Reason.JUNK),
        ("Write poems.", Reason.TOO_SHORT),
        ("Write " + "a very long poem " * 12 + ".", Reason.TOO_LONG),
        ("write a poem about the rain.", Reason.BAD_START),
        ("Write a poem about the rain and", Reason.UNFINISHED),
        ('Write a poem about the rain called "Drops."', None),
        ("What makes a good friend?", None),
    ],
)
def test_line_problem(text, reason):
    assert line_problem(text, SelfInstructSettings()) == reason


def test_parse_continuation_cases():
    found, dropped = parse_continuation(
        " First task here.\n\n4) [food/list] Second task here.\n5. Untagged one.\n  \nrandom",
        "science",
        "explain",
        set(TOPICS),
        set(KINDS),
    )
    assert [(c.text, c.topic, c.kind) for c in found] == [
        ("First task here.", "science", "explain"),
        ("Second task here.", "food", "list"),
    ]
    assert [(d.text, d.reason) for d in dropped] == [
        ("5. Untagged one.", Reason.BAD_TAG),
        ("random", Reason.NOT_AN_ITEM),
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_parser_and_filters_never_crash(text):
    found, dropped = parse_continuation(text, "science", "explain", set(TOPICS), set(KINDS))
    lines = text.split("\n")
    assert len(found) + len(dropped) == 1 + sum(bool(line.strip()) for line in lines[1:])
    for c in found:
        line_problem(c.text, SelfInstructSettings())


def test_on_the_tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai_bootstrap.engines.hf import HFEngine

    engine = HFEngine(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    )
    cfg = _cfg(max_new_tokens=24, samples_per_prompt=2)
    runs = [si.run(cfg, SEEDS, engine, TOPICS, KINDS, exclude=HELDOUT) for _ in range(2)]
    assert runs[0] == runs[1]
    s = runs[0].stats
    assert s["candidates"] >= 4 and s["accepted"] + s["rejected"] == s["candidates"]
    # The critic really scores through the model: a finite margin that matches the two log-probs.
    (margin,) = si.critic_margins(engine, ["Describe how the moon changes shape."])
    prompt = si.render("selfinstruct_critic", task="Describe how the moon changes shape.")
    yes, no = engine.logprobs([prompt, prompt], [" Yes", " No"])
    assert math.isfinite(margin) and margin == pytest.approx(yes - no)
