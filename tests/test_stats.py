"""Statistics checked against values worked out by hand (formulas in the comments)."""

import math

import pytest

from cai_bootstrap.errors import StepFailed
from cai_bootstrap.stats import (
    Direction,
    benjamini_hochberg,
    cohens_h,
    compare,
    mcnemar,
    summarize,
    wilson,
)


def test_wilson_8_of_10():
    # z = 1.959964; centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.716738
    # half = z * sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10) = 0.226578
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)


def test_wilson_empty_and_edges():
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(0, 5)
    assert low == 0.0 and high == pytest.approx(0.434482, abs=1e-5)  # z^2/(n+z^2) = 3.8415/8.8415
    with pytest.raises(StepFailed):
        wilson(6, 5)


def test_summarize():
    s = summarize(8, 10)
    assert (s.successes, s.n, s.rate) == (8, 10, 0.8)
    assert s.ci_low < 0.8 < s.ci_high
    assert summarize(0, 0).rate == 0.0


def _paired(b: int, c: int, both: int = 0, neither: int = 0) -> tuple[list[bool], list[bool]]:
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    trained = [False] * b + [True] * c + [True] * both + [False] * neither
    return base, trained


def test_mcnemar_exact_small_counts():
    # b=1, c=9: P(X <= 1 | n=10, p=1/2) = 11/1024, two-sided 22/1024; concordant items do not count.
    r = mcnemar(*_paired(1, 9, both=5, neither=3))
    assert (r.b, r.c, r.n) == (1, 9, 18)
    assert r.method == "exact" and r.statistic is None
    assert r.p_value == pytest.approx(22 / 1024, rel=1e-9)
    assert r.direction is Direction.IMPROVED


def test_mcnemar_chi2_large_counts():
    # b=30, c=50: (|30-50|-1)^2 / 80 = 4.5125; P(chi2_1 > 4.5125) = erfc(sqrt(4.5125/2)) = 0.033648
    r = mcnemar(*_paired(30, 50, both=10))
    assert r.method == "chi2_cc"
    assert r.statistic == pytest.approx(4.5125)
    assert r.p_value == pytest.approx(0.0336480, abs=1e-6)
    assert mcnemar(*_paired(50, 30)).direction is Direction.REGRESSED


def test_mcnemar_no_discordant_and_unpaired():
    r = mcnemar([True, False], [True, False])
    assert r.p_value == 1.0 and r.direction is Direction.UNCHANGED
    with pytest.raises(StepFailed, match="not paired"):
        mcnemar([True], [True, False])


def test_cohens_h():
    # 2 asin(sqrt .8) - 2 asin(sqrt .5) = 2.214297 - 1.570796
    assert cohens_h(0.5, 0.8) == pytest.approx(0.643501, abs=1e-6)
    assert cohens_h(0.8, 0.5) == pytest.approx(-0.643501, abs=1e-6)
    assert cohens_h(0.0, 1.0) == pytest.approx(math.pi)
    with pytest.raises(StepFailed):
        cohens_h(0.5, 80)


def test_benjamini_hochberg_hand_worked():
    # sorted p: .001 .008 .039 .041 .042 .060, m=6; p*m/rank: .006 .024 .078 .0615 .0504 .060;
    # running min from the top: .006 .024 .0504 .0504 .0504 .060. Only ranks 1-2 pass at 0.05,
    # although .039 < .05 unadjusted.
    out = benjamini_hochberg([0.041, 0.001, 0.060, 0.039, 0.008, 0.042])
    expected = [
        (0.0504, False),
        (0.006, True),
        (0.060, False),
        (0.0504, False),
        (0.024, True),
        (0.0504, False),
    ]
    for (adj, rej), (e_adj, e_rej) in zip(out, expected, strict=True):
        assert adj == pytest.approx(e_adj) and rej is e_rej
    assert benjamini_hochberg([]) == []


def test_compare_overall_and_per_type():
    base, trained = _paired(1, 9, both=5, neither=5)
    by_type = {
        "length:max_words": _paired(0, 8, both=2),
        "punctuation:no_comma": _paired(1, 1, both=3),
    }
    cmp = compare(base, trained, by_type)
    assert cmp.base.rate == pytest.approx(6 / 20) and cmp.trained.rate == pytest.approx(14 / 20)
    assert cmp.delta == pytest.approx(0.4)
    assert cmp.mcnemar.p_value == pytest.approx(22 / 1024)
    assert cmp.cohens_h == pytest.approx(cohens_h(0.3, 0.7))
    rows = {r.type: r for r in cmp.per_type}
    # raw p: 2/256 = 0.0078125 and 1.0; BH with m=2: 0.015625 and 1.0
    assert rows["length:max_words"].p_adjusted == pytest.approx(0.015625)
    assert rows["length:max_words"].significant
    assert rows["punctuation:no_comma"].p_adjusted == 1.0
    assert not rows["punctuation:no_comma"].significant
    assert compare([True], [False]).per_type == []


def test_gate_without_conditions_records_and_never_fails():
    from cai_bootstrap.config import GateSettings
    from cai_bootstrap.errors import GateFailed
    from cai_bootstrap.steps import gate

    cmp = compare(*_paired(9, 1, both=5, neither=5))  # the trained model got worse
    none = gate.decide(GateSettings(), 1, cmp)
    assert (none.configured, none.passed, none.needed) == (False, True, None)
    assert "no gate configured" in none.reason
    gate.enforce(1, none)  # never raises
    strict = gate.decide(GateSettings(min_success=0.9), 1, cmp)
    assert (strict.configured, strict.passed, strict.needed) == (True, False, 0.9)
    with pytest.raises(GateFailed, match="Stage 1 FAILED"):
        gate.enforce(1, strict)
