"""alexnet.claims.verdict: the rule against hand-computed t intervals, its false-positive rate under no
effect, and its text, which docs/ablations.md must hold verbatim."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from alexnet.claims import verdict
from alexnet.claims.verdict import judge

T_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables)
T_DF1 = 12.706204736174707  # ... 1 degree of freedom
ROOT = Path(__file__).resolve().parents[1]


def _hand(effects, t):
    """mean, low, high by hand: numpy's mean and sample std, a tabled t value."""
    x = np.asarray(effects, dtype=float)
    half = t * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def test_interval_by_hand():
    effects = [3.0, 1.0, 2.5]
    mean, low, high = _hand(effects, T_DF2)  # 2.1667, sd 1.0408, half 2.5856
    v = judge(effects, "points", "about", 1.4)
    assert (v.n, v.mean, v.low, v.high) == (3, pytest.approx(mean), pytest.approx(low), pytest.approx(high))
    assert v.low == pytest.approx(-0.4189, abs=1e-4) and v.text.startswith(verdict.NO_EFFECT)
    # the effect these 3 runs detect 80% of the time: larger than the 2.59-point half-width
    assert f"(an effect of ±{verdict.detectable(np.std(effects, ddof=1), 3):.2f} points would be detected 80% of the time)" \
        in v.text and verdict.detectable(np.std(effects, ddof=1), 3) > 2.59
    # n = 2: the t value is 12.7, not 2
    assert judge([3.0, 1.0], "points", "about", 1.4).low == pytest.approx(2.0 - T_DF1 * math.sqrt(2) / math.sqrt(2))


@pytest.mark.parametrize("effects,kind,value,expected", [
    ([1.3, 1.5, 1.4], "about", 1.4, verdict.MATCHES),  # interval [1.15, 1.65] holds 1.4
    ([0.10, 0.11, 0.09], "about", 1.4, verdict.SMALLER),  # a 0.1-point effect measured precisely
    ([3.0, 3.1, 2.9], "about", 1.4, verdict.LARGER),
    ([-1.0, -1.1, -0.9], "about", 1.4, verdict.OPPOSITE),
    ([2.0, 2.1, 1.9], "at_least", 1.0, verdict.MATCHES),  # "over 1%": the interval lies above 1
    ([1.0, 1.1, 0.9], "at_least", 1.0, verdict.SIZE_UNRESOLVED),  # [0.75, 1.25]: above 0, holds 1
    ([0.5, 0.6, 0.4], "at_least", 1.0, verdict.SMALLER),
    ([0.5, 0.6, 0.4], "direction", None, verdict.DIRECTION),
    ([-0.5, -0.6, -0.4], "direction", None, verdict.OPPOSITE),
])
def test_verdicts_on_tight_intervals(effects, kind, value, expected):
    assert judge(effects, "points", kind, value).text == expected


def test_a_tenth_of_a_point_does_not_match_a_1_4_point_claim():
    """Measured precisely, 0.1 points is resolved (not zero) and smaller than the paper's 1.4."""
    effects = [0.1, 0.1001, 0.0999]
    v = judge(effects, "points", "about", 1.4)
    assert v.text == verdict.SMALLER and v.text != verdict.MATCHES
    _, low, high = _hand(effects, T_DF2)
    assert 0 < low < high < 1.4 and (v.low, v.high) == (pytest.approx(low), pytest.approx(high))


def test_ratios_are_judged_on_their_logarithm():
    ratios = [5.0, 7.0, 6.2]
    logs = np.log(ratios)
    mean, low, high = _hand(logs, T_DF2)
    v = judge(list(logs), "ratio", "about", 6.0)
    assert (v.mean, v.low, v.high) == (pytest.approx(math.exp(mean)), pytest.approx(math.exp(low)),
                                       pytest.approx(math.exp(high)))
    assert v.text == verdict.MATCHES
    # a ratio of 1.1 measured precisely: the paper's direction, far from six times
    assert judge(list(np.log([1.1, 1.1001, 1.0999])), "ratio", "about", 6.0).text == verdict.SMALLER
    noisy = judge(list(np.log([0.5, 2.0, 1.0])), "ratio", "about", 6.0).text
    assert noisy.startswith(verdict.NO_EFFECT) and "x/÷" in noisy


def test_what_comes_before_the_interval():
    assert judge([], "points", "about", 1.4).text == verdict.NOT_RUN
    assert judge([2.0], "points", "about", 1.4) == verdict.Verdict(verdict.ONE_RUN, 1, 2.0)
    tiny = judge([1.3, 1.5, 1.4], "points", "about", 1.4, not_comparable="data.source tiny")
    assert tiny.text == "pipeline check (data.source tiny)" and tiny.low is not None  # the interval is still shown
    # a seed whose measure never came (a net that did not reach the target): no verdict from the rest
    assert judge([1.3, 1.5], "points", "about", 1.4, censored=1).text == "incomplete (2 of 3 seeds measured)"
    assert judge([], "ratio", "about", 6.0, censored=3).text == "incomplete (0 of 3 seeds measured)"
    assert judge([], "ratio", "about", 6.0, "tiny", censored=3).text == "pipeline check (tiny)"


def test_the_detectable_effect_is_detected_80_percent_of_the_time():
    """Simulated: n seeds of a true effect equal to detectable(sd, n), judged by the rule; the
    interval excludes zero in about 80% of them (an effect of the half-width's size: ~55-62%)."""
    rng = np.random.default_rng(7)
    for n in (3, 4, 5):
        effect = verdict.detectable(1.0, n)
        x = rng.normal(effect, 1.0, size=(20000, n))
        t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
        crit = {3: T_DF2, 4: 3.182446, 5: 2.776445}[n]
        assert np.mean(np.abs(t) > crit) == pytest.approx(0.80, abs=0.015)
        half = crit / math.sqrt(n)  # the interval's half-width at sd 1
        y = rng.normal(half, 1.0, size=(20000, n))
        ty = y.mean(1) / (y.std(1, ddof=1) / math.sqrt(n))
        assert np.mean(np.abs(ty) > crit) < 0.65 and effect > 1.3 * half  # "unseen beyond the half-width" overstated the power


def test_no_effect_gives_a_resolved_verdict_in_about_5_percent_of_runs():
    """Three seeds of pure noise (normal, no effect), 4000 times: the interval excludes zero (any
    verdict but 'no effect resolved') at the test's level, 5%, and not at the old rule's 18%."""
    rng = np.random.default_rng(20)
    draws = rng.normal(0.0, 1.5, size=(4000, 3))
    resolved = sum(not judge(list(d), "points", "about", 1.4).text.startswith(verdict.NO_EFFECT) for d in draws)
    assert 0.035 < resolved / len(draws) < 0.065


def test_the_rule_in_the_docs_is_the_rule_in_the_code():
    """docs/ablations.md holds verdict.rule() verbatim, as the claims table prints it."""
    docs = (ROOT / "docs" / "ablations.md").read_text()
    block = "".join(f"- {line}\n" for line in verdict.rule())
    assert block in docs
    for name in (verdict.MATCHES, verdict.SMALLER, verdict.NO_EFFECT, verdict.OPPOSITE, verdict.INCOMPLETE):
        assert f"'{name}" in block
