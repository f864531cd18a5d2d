import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
from scipy.stats import chisquare

from cai_bootstrap.constitution import Category, load_constitution
from cai_bootstrap.errors import UserError
from cai_bootstrap.templates import render


def _principle(pid: str, weight: float = 1.0, **extra) -> dict:
    return {
        "id": pid,
        "category": "honesty",
        "critique_request": f"Is {pid} broken?",
        "revision_request": f"Fix {pid}.",
        "weight": weight,
        **extra,
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "constitution.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_constitution_loads_and_covers_the_main_values():
    c = load_constitution(None)
    assert len(c.principles) >= 12
    categories = {p.category for p in c.principles}
    for needed in (Category.HELPFULNESS, Category.INSTRUCTION_FOLLOWING, Category.HONESTY):
        assert needed in categories
    assert {Category.HARMLESSNESS, Category.PRIVACY, Category.FAIRNESS} <= categories
    assert any("explicit requirement" in p.critique_request for p in c.principles)
    # Both verdicts appear among the few-shot examples, so critique prompts show both.
    examples = [ex for p in c.principles for ex in p.examples]
    assert any(ex.has_problem for ex in examples) and any(not ex.has_problem for ex in examples)


def test_load_from_file_and_digest_changes(tmp_path):
    path = _write(tmp_path, {"name": "t", "principles": [_principle("a"), _principle("b", 2.0)]})
    c = load_constitution(path)
    assert [p.id for p in c.principles] == ["a", "b"]
    changed = load_constitution(_write(tmp_path, {"principles": [_principle("a"), _principle("b", 3.0)]}))
    assert c.digest() != changed.digest()


@pytest.mark.parametrize(
    "principles, needle",
    [
        ([_principle("a"), _principle("a")], "duplicate principle id 'a'"),
        ([_principle("a", critique_request="   ")], "critique_request: must not be empty"),
        ([_principle("a", colour="red")], "colour: unknown field"),
        ([_principle("a", weight=0)], "weight"),
        ([_principle("a", category="vibes")], "category"),
    ],
)
def test_validation_errors_name_file_and_problem(tmp_path, principles, needle):
    path = _write(tmp_path, {"principles": principles})
    with pytest.raises(UserError) as info:
        load_constitution(path)
    assert str(path) in info.value.cause
    assert needle in info.value.cause
    if needle != "duplicate principle id 'a'":
        assert "(id 'a')" in info.value.cause  # the principle is named, not only its index


def test_unknown_top_level_field_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="principle: unknown field"):
        load_constitution(_write(tmp_path, {"principles": [_principle("a")], "principle": []}))
    with pytest.raises(UserError, match="does not exist"):
        load_constitution(tmp_path / "nope.yaml")


def test_empty_example_text_is_rejected(tmp_path):
    bad = _principle("a", examples=[{"prompt": "p", "response": "", "critique": "c", "revision": None}])
    with pytest.raises(UserError, match="examples.0.response: must not be empty"):
        load_constitution(_write(tmp_path, {"principles": [bad]}))


def test_weighted_sampling_matches_weights(tmp_path):
    weights = [1.0, 2.0, 3.0, 4.0]
    c = load_constitution(
        _write(tmp_path, {"principles": [_principle(f"p{i}", w) for i, w in enumerate(weights)]})
    )
    rng = random.Random(123)
    n = 20000
    counts = Counter(c.sample(rng).id for _ in range(n))
    observed = [counts[f"p{i}"] for i in range(len(weights))]
    expected = [n * w / sum(weights) for w in weights]
    assert chisquare(observed, expected).pvalue > 0.001
    # and a wrong hypothesis (uniform weights) is clearly rejected by the same test
    assert chisquare(observed, [n / 4] * 4).pvalue < 1e-6


def test_examples_put_the_sampled_principle_first_and_filter_revisions():
    c = load_constitution(None)
    first = c.get("no-meta-talk")
    shots = c.examples(first, 3, with_revision=True)
    assert shots[0][0].id == "no-meta-talk"
    assert all(ex.revision for _, ex in shots) and len(shots) == 3
    with pytest.raises(UserError, match="unknown principle id"):
        c.get("nope")


def test_templates_render_principle_and_end_at_the_open_field():
    c = load_constitution(None)
    p = c.get("no-fabrication")
    text = render("critique", shots=c.examples(p, 2, False), prompt="Q?", response="R.", principle=p)
    assert text.endswith("Principle: " + p.critique_request + "\nCritique:")
    assert text.count("Verdict:") >= 2
