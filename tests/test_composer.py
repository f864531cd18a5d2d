"""Base-task bank, phrasings and the composer: splits, determinism, compatibility, checkable kwargs."""

import random
import re
from itertools import combinations

import pytest

from cai_bootstrap.errors import UserError
from cai_bootstrap.records import ConstraintSpec
from cai_bootstrap.tasks.composer import compose, constraint_types_default, load_base_tasks
from cai_bootstrap.tasks.constraints import CHECKERS, check
from cai_bootstrap.tasks.constraints.compat import specs_compatible, types_compatible
from cai_bootstrap.tasks.phrasings import PHRASINGS, sample_constraint

TRAIN, HELDOUT = load_base_tasks("train"), load_base_tasks("heldout")
ALL_TYPES = sorted(PHRASINGS)


def test_bank_size_and_disjoint_splits():
    bank = TRAIN + HELDOUT
    assert len(bank) >= 150
    assert len({t.topic for t in bank}) >= 25 and len({t.kind for t in bank}) >= 8
    assert len(HELDOUT) >= 20 and len(TRAIN) >= 100
    assert not {t.id for t in TRAIN} & {t.id for t in HELDOUT}
    assert not {t.text for t in TRAIN} & {t.text for t in HELDOUT}
    assert not {(t.topic, t.kind) for t in TRAIN} & {(t.topic, t.kind) for t in HELDOUT}
    assert load_base_tasks("train") == TRAIN  # deterministic


def _template_re(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts) + r"\Z", re.DOTALL)


def _matches(text: str, templates) -> bool:
    return any(_template_re(t).match(text) for t in templates)


def test_phrasings_counts_and_disjoint_splits():
    assert set(PHRASINGS) <= set(CHECKERS)
    for type_id, p in PHRASINGS.items():
        assert len(p.train) >= 3 and len(p.heldout) >= 2, type_id
        assert not set(p.train) & set(p.heldout), type_id
        assert len(set(p.train)) == len(p.train) and len(set(p.heldout)) == len(p.heldout)


def test_sampled_wording_comes_from_its_split_only():
    rng = random.Random(3)
    for type_id in ALL_TYPES:
        for _ in range(10):
            for split, other in (("train", "heldout"), ("heldout", "train")):
                spec = sample_constraint(rng, type_id, split, task="Explain why leaves change colour.")
                assert _matches(spec.text, PHRASINGS[type_id].templates(split)), spec.text
                assert not _matches(spec.text, PHRASINGS[type_id].templates(other)), spec.text
                assert "{" not in spec.text and "}" not in spec.text


def test_unknown_types_and_splits_are_errors():
    with pytest.raises(UserError, match="has a checker but no phrasing"):
        sample_constraint(random.Random(0), "detectable_format:constrained_response", "train")
    with pytest.raises(UserError, match="no such type"):
        sample_constraint(random.Random(0), "cai:nope", "train")
    with pytest.raises(UserError, match="unknown split"):
        sample_constraint(random.Random(0), "punctuation:no_comma", "test")
    with pytest.raises(UserError, match="needs the task text"):
        sample_constraint(random.Random(0), "combination:repeat_prompt", "train")
    with pytest.raises(UserError, match="cannot be composed"):
        compose(random.Random(0), TRAIN, 3, "train", ["cai:nope"])


def test_compose_is_deterministic_and_distinct():
    types = constraint_types_default()
    a = compose(random.Random(11), TRAIN, 200, "train", types)
    b = compose(random.Random(11), TRAIN, 200, "train", types)
    c = compose(random.Random(12), TRAIN, 200, "train", types)
    assert a == b and a != c
    assert len({i.prompt for i in a}) == 200 and len({i.id for i in a}) == 200
    assert all(i.id.startswith("train-") and i.split == "train" and i.stage == 1 for i in a)
    assert all(1 <= len(i.constraints) <= 3 for i in a)
    assert {len(i.constraints) for i in a} == {1, 2, 3}
    assert all(i.prompt.startswith(i.task) and all(s.text in i.prompt for s in i.constraints) for i in a)


def test_heldout_instructions_use_heldout_tasks_and_wordings():
    out = compose(random.Random(5), HELDOUT, 100, "heldout", ALL_TYPES, min_constraints=2, stage=2)
    train_texts = {t.text for t in TRAIN}
    for inst in out:
        assert inst.id.startswith("heldout-") and inst.stage == 2 and inst.task not in train_texts
        for spec in inst.constraints:
            assert _matches(spec.text, PHRASINGS[spec.id].heldout)


def test_composed_constraints_are_pairwise_compatible():
    out = compose(random.Random(2), TRAIN, 400, "train", ALL_TYPES, min_constraints=2)
    for inst in out:
        for a, b in combinations(inst.constraints, 2):
            assert specs_compatible(a, b), (a.id, b.id)
    seen_pairs = {frozenset((a.id, b.id)) for i in out for a, b in combinations(i.constraints, 2)}
    assert frozenset(("change_case:english_lowercase", "change_case:english_capital")) not in seen_pairs
    assert (
        frozenset(("detectable_format:json_format", "detectable_format:number_bullet_lists"))
        not in seen_pairs
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("change_case:english_lowercase", "change_case:english_capital"),
        ("change_case:english_lowercase", "change_case:capital_word_frequency"),
        ("length_constraints:number_words", "cai:max_words"),
        ("cai:exact_words", "cai:word_range"),
        ("detectable_format:json_format", "detectable_format:number_bullet_lists"),
        ("detectable_format:json_format", "punctuation:no_comma"),
        ("startend:quotation", "startend:end_checker"),
        ("cai:start_with", "startend:quotation"),
        ("cai:numbered_list", "detectable_format:number_bullet_lists"),
        ("cai:no_digits", "cai:numbered_list"),
        ("language:response_language", "change_case:english_lowercase"),
        ("punctuation:no_comma", "punctuation:no_comma"),
    ],
)
def test_incompatible_types(a, b):
    assert not types_compatible(a, b) and not types_compatible(b, a)


def test_compatible_types_and_argument_clashes():
    assert types_compatible("punctuation:no_comma", "detectable_format:title")
    assert types_compatible("cai:max_words", "length_constraints:number_sentences")
    ban = ConstraintSpec(id="keywords:forbidden_words", kwargs={"forbidden_words": ["river"]}, text="")
    need = ConstraintSpec(id="keywords:existence", kwargs={"keywords": ["River"]}, text="")
    other = ConstraintSpec(id="keywords:existence", kwargs={"keywords": ["riverbank"]}, text="")
    assert not specs_compatible(ban, need) and not specs_compatible(need, ban)
    assert specs_compatible(ban, other)
    end = ConstraintSpec(id="startend:end_checker", kwargs={"end_phrase": "Bye, now."}, text="")
    assert not specs_compatible(ConstraintSpec(id="punctuation:no_comma", text=""), end)


def test_impossible_requests_are_errors():
    with pytest.raises(UserError, match="composed only"):
        compose(
            random.Random(0),
            TRAIN,
            5,
            "train",
            ["detectable_format:json_format", "detectable_format:number_bullet_lists"],
            min_constraints=2,
        )
    with pytest.raises(UserError, match="composed only"):
        compose(random.Random(0), TRAIN[:1], 5, "train", ["punctuation:no_comma"])
    with pytest.raises(UserError, match="cannot give 2"):
        compose(random.Random(0), TRAIN, 5, "train", ["punctuation:no_comma"], min_constraints=2)


def test_default_types_are_composable():
    assert set(constraint_types_default()) <= set(PHRASINGS)


def _words(n: int) -> str:
    return " ".join(["honey"] * n)


# A response built to satisfy the sampled arguments, for types whose arguments vary.
BUILDERS = {
    "cai:exact_words": lambda k: _words(k["num_words"]),
    "cai:max_words": lambda k: _words(k["max_words"]),
    "cai:word_range": lambda k: _words(k["min_words"]),
    "cai:start_with": lambda k: f"{k['start_phrase']}, bees make honey.",
    "cai:numbered_list": lambda k: "\n".join(f"{i}. step" for i in range(1, k["num_items"] + 1)),
    "startend:end_checker": lambda k: f"Bees make honey. {k['end_phrase']}",
    "detectable_content:postscript": lambda k: f"Bees make honey.\n\n{k['postscript_marker']} They dance.",
    "detectable_content:number_placeholders": lambda k: " ".join(["[name]"] * k["num_placeholders"]),
    "detectable_format:number_bullet_lists": lambda k: "\n".join(["* bees"] * k["num_bullets"]),
    "detectable_format:number_highlighted_sections": lambda k: " ".join(["*bees*"] * k["num_highlights"]),
    "detectable_format:multiple_sections": lambda k: "\n".join(
        f"{k['section_spliter']} {i}\nBees." for i in range(1, k["num_sections"] + 1)
    ),
    "keywords:existence": lambda k: "Bees: " + " and ".join(k["keywords"]) + ".",
    "keywords:forbidden_words": lambda k: "Bees fly.",
    "keywords:frequency": lambda k: " ".join(
        [k["keyword"]] * (k["frequency"] if k["relation"] == "at least" else 1)
    ),
    "keywords:letter_frequency": lambda k: (
        k["letter"] * k["let_frequency"] if k["let_relation"] == "at least" else "bee"
    ),
    "length_constraints:number_words": lambda k: _words(k["num_words"] if k["relation"] == "at least" else 1),
    "length_constraints:number_sentences": lambda k: " ".join(
        ["Bees fly."] * (k["num_sentences"] if k["relation"] == "at least" else 1)
    ),
    "length_constraints:number_paragraphs": lambda k: "\n***\n".join(["Bees fly."] * k["num_paragraphs"]),
    "length_constraints:nth_paragraph_first_word": lambda k: "\n\n".join(
        f"{k['first_word'].title() if i == k['nth_paragraph'] else 'Bees'} fly."
        for i in range(1, k["num_paragraphs"] + 1)
    ),
    "change_case:capital_word_frequency": lambda k: (
        " ".join(["BEES"] * k["capital_frequency"]) if k["capital_relation"] == "at least" else "bees fly."
    ),
    "combination:repeat_prompt": lambda k: f"{k['prompt_to_repeat']} Bees collect nectar.",
}


@pytest.mark.parametrize("type_id", sorted(BUILDERS))
def test_sampled_kwargs_are_satisfiable(type_id):
    rng = random.Random(type_id)
    for _ in range(20):
        split = rng.choice(["train", "heldout"])
        spec = sample_constraint(rng, type_id, split, task="Explain how bees make honey in the summer.")
        response = BUILDERS[type_id](spec.kwargs)
        assert check(spec.id, spec.kwargs, response), (spec, response)
