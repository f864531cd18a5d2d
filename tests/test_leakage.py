import json
import random

import pytest

from cai_bootstrap.errors import StepFailed
from cai_bootstrap.tasks.leakage import (
    MIN_CONTAINED_SHINGLES,
    MatchKind,
    NearDupIndex,
    assert_no_leakage,
    check_leakage,
    normalise,
    shingles,
)

TRAIN = [
    "Describe how bees make honey. Answer in lowercase letters only.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle. Do not use any commas.",
    "List three ways to save water at home. Use exactly 3 bullet points in markdown.",
    "Explain why the sky is blue. Keep it under 40 words.",
    "Give two tips for learning a new language quickly.",
]
CLEAN_EVAL = [
    "Compare trains and planes for a trip of 500 kilometres. Answer in lowercase letters only.",
    "Summarise the water cycle for a ten-year-old. End your response with the phrase 'Any questions?'",
]


def test_normalise_and_shingles():
    assert normalise("  Hello,   WORLD!! ") == "hello world"
    assert normalise("¡Ｈｏｌａ!") == "hola"  # NFKC folds full-width letters
    assert shingles("") == frozenset()
    assert shingles("Hi!") == frozenset({" hi "})
    assert " bees" in shingles("Describe how bees make honey.")


def test_clean_data_passes():
    report = assert_no_leakage(CLEAN_EVAL, TRAIN, threshold=0.6)
    assert report.n_leaked == 0 and report.n_eval == 2 and report.n_train == 5


def test_exact_near_and_contained_overlaps_are_found():
    eval_prompts = [
        CLEAN_EVAL[0],
        "describe how BEES make honey -- answer in lowercase letters only",  # exact after normalising
        "Write a short story about a lighthouse keeper who finds a letter in a bottle. Do not use any commas.",
        "List three ways to save water at home.",  # the training prompt embeds this task
        "Give two tips for learning a new language quickly. Wrap your answer in double quotes.",  # reverse
    ]
    report = check_leakage(eval_prompts, TRAIN, threshold=0.6)
    found = {o.eval_index: o for o in report.overlaps}
    assert sorted(found) == [1, 2, 3, 4]
    assert found[1].kind == MatchKind.EXACT and found[1].train_index == 0
    assert found[2].kind == MatchKind.NEAR and found[2].train_index == 1 and found[2].jaccard >= 0.6
    assert found[3].kind == MatchKind.CONTAINED and found[3].train_index == 2 and found[3].containment == 1.0
    assert found[4].kind == MatchKind.CONTAINED and found[4].train_index == 4
    summary = report.summary()
    json.dumps(summary)
    assert summary["n_leaked"] == 4 and summary["by_kind"] == {"exact": 1, "near": 1, "contained": 2}


def test_containment_off_and_short_texts_are_not_contained():
    assert (
        check_leakage(["List three ways to save water at home."], TRAIN, 0.6, containment=None).n_leaked == 0
    )
    short = "Write a poem."
    assert len(shingles(short)) < MIN_CONTAINED_SHINGLES
    assert check_leakage([short], ["Write a poem about the sea at night, in four lines."], 0.6).n_leaked == 0


def test_assert_no_leakage_raises_with_count_and_example():
    with pytest.raises(StepFailed) as err:
        assert_no_leakage([TRAIN[3], TRAIN[0].upper(), CLEAN_EVAL[1]], TRAIN, threshold=0.8)
    assert err.value.cause.startswith("held-out leakage: 2 evaluation prompts appear in training data")
    assert "Explain why the sky is blue" in err.value.cause
    assert err.value.fix


def _brute_force(query: str, stored: list[str], threshold: float, containment: float):
    """All-pairs reference for NearDupIndex.match."""
    q = shingles(query)
    best = None
    for i, text in enumerate(stored):
        if normalise(text) == normalise(query) and normalise(query):
            return (i, "exact")
    for i, text in enumerate(stored):
        t = shingles(text)
        inter = len(q & t)
        if not inter:
            continue
        jac, small = inter / len(q | t), min(len(q), len(t))
        cont = inter / small
        ok = jac >= threshold or (small >= MIN_CONTAINED_SHINGLES and cont >= containment)
        if ok and (best is None or (jac, cont) > best[0]):
            best = ((jac, cont), i)
    return None if best is None else (best[1], "hit")


def test_index_agrees_with_all_pairs_reference():
    rng = random.Random(3)
    words = "bees honey sea moon river write list explain three short story about the a of why how".split()
    stored = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + "." for _ in range(150)]
    queries = [rng.choice(stored).replace("the", "a", 1) for _ in range(60)]
    queries += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 10))) for _ in range(60)] + [
        "",
        "!!",
    ]
    queries += [rng.choice(stored) + " moon river sea write list and a story" for _ in range(30)]
    index = NearDupIndex(0.5, 0.8)
    for text in stored[:75]:
        index.add(text)  # half added one by one, half at once: both paths must agree
    for text in stored[75:]:
        index.add(text)
    got = index.match_many(queries, block=7)
    for query, m in zip(queries, got, strict=True):
        ref = _brute_force(query, stored, 0.5, 0.8)
        if ref is None:
            assert m is None, query
        else:
            assert m is not None and m.index == ref[0], query
            assert (m.kind == MatchKind.EXACT) == (ref[1] == "exact")
    assert [index.match(q) for q in queries[:10]] == got[:10]
    assert {m.kind for m in got if m} == set(MatchKind) and got.count(None) > 10


def test_index_rejects_bad_thresholds():
    with pytest.raises(ValueError):
        NearDupIndex(0.0)
    with pytest.raises(ValueError):
        NearDupIndex(0.5, containment=1.5)
