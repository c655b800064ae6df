"""The claims table's verdict rule, stated once: one claim's per-seed effects against the paper's number.

Owns `judge` (effects -> mean, 95% interval, verdict) and `rule()`, the rule in words, which the
claims table prints under itself and docs/ablations.md holds verbatim (tests/test_verdict.py
compares them), so the text cannot drift from the code. Which runs count as the paper's data is
`alexnet.fidelity.comparable`; the caller passes its reason here. Torch-free.

Effects are oriented by the caller so that positive is the paper's direction: a difference in
percentage points (scale "points"), or the log of a ratio (scale "ratio"; the paper's number is
the ratio itself, e.g. 6 for "six times faster").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

from alexnet.fidelity import PIPELINE_CHECK

LEVEL = 0.95  # two-sided
Scale = Literal["points", "ratio"]
# about: "reduces ... by 1.4%"; at_least: "by over 1%"; direction: no number, a sign only
Kind = Literal["about", "at_least", "direction"]

NOT_RUN = "not run"
INCOMPLETE = "incomplete"
ONE_RUN = "one run"
OPPOSITE = "opposite sign"
NO_EFFECT = "no effect resolved"
MATCHES = "matches the paper"
SMALLER = "smaller effect"
LARGER = "larger effect"
DIRECTION = "paper's direction"
SIZE_UNRESOLVED = "paper's direction, size unresolved"
SHORTENED = "shortened schedule"


@dataclass(frozen=True)
class Verdict:
    """One claim judged: the verdict, and ours on the claim's scale (a ratio: exp of the log effect)."""

    text: str
    n: int
    mean: float | None = None  # the mean effect (ratio: the geometric mean ratio)
    low: float | None = None  # the interval (None for n < 2)
    high: float | None = None


def t_interval(effects: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the LEVEL two-sided Student t interval of the mean, n - 1 degrees of freedom."""
    n = len(effects)
    if n < 2:
        raise ValueError("an interval needs two or more effects")
    mean = sum(effects) / n
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * _sample_sd(effects) / math.sqrt(n)
    return mean, mean - half, mean + half


def _sample_sd(effects: Sequence[float]) -> float:
    mean = sum(effects) / len(effects)
    return math.sqrt(sum((e - mean) ** 2 for e in effects) / (len(effects) - 1))


def _decide(low: float, high: float, kind: Kind, target: float | None) -> str:
    """The rule's last steps, on the effect scale (target: the paper's number there)."""
    if high < 0:
        return OPPOSITE
    if low <= 0:
        return NO_EFFECT
    if kind == "direction" or target is None:
        return DIRECTION
    if kind == "at_least":
        return MATCHES if low >= target else SMALLER if high < target else SIZE_UNRESOLVED
    return MATCHES if low <= target <= high else SMALLER if high < target else LARGER


POWER = 0.80  # the detection probability for which the notes of an interval holding zero state an effect size


def detectable(sd: float, n: int, power: float = POWER) -> float:
    """The smallest true effect that n runs with this spread detect (an interval excluding zero,
    two-sided at LEVEL) with probability `power`: the one-sample t test's power from the
    noncentral t distribution, solved for the effect. Larger than the interval's half-width,
    which an effect of its own size clears only about half the time."""
    df = n - 1
    crit = float(stats.t.ppf(0.5 + LEVEL / 2, df))

    def shortfall(delta: float) -> float:
        wrong_side = float(np.nan_to_num(stats.nct.cdf(-crit, df, delta)))  # NaN far in scipy's tail: ~0
        return float(stats.nct.sf(crit, df, delta)) + wrong_side - power

    high = 1.0
    while shortfall(high) < 0:  # doubling: scipy's nct is NaN far out in the tail
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high)) * sd / math.sqrt(n)


def _detectable_text(effects: Sequence[float], scale: Scale) -> str:
    effect = detectable(_sample_sd(effects), len(effects))
    size = f"x/÷{math.exp(effect):.2f}" if scale == "ratio" else f"±{effect:.2f} points"
    return f"an effect of {size} would be detected {POWER:.0%} of the time"


def judge(effects: Sequence[float], scale: Scale, kind: Kind, value: float | None = None,
          not_comparable: str = "", censored: int = 0, shortened: str = "") -> Verdict:
    """The verdict on one claim: `effects` per seed (points, or log ratios), oriented so that
    positive is the paper's direction; `value` the paper's number (points, or the ratio);
    `not_comparable` why the runs are not the paper's data (alexnet.fidelity.comparable), "" if they
    are; `censored` how many further seeds have no measure (a net that never reached the target);
    `shortened` why a real-data run is shorter than the authors' ("" if it is not)."""
    n = len(effects)
    back = math.exp if scale == "ratio" else (lambda x: x)
    if n == 0 and not censored:
        return Verdict(NOT_RUN, 0)
    interval = t_interval(effects) if n >= 2 else None
    holds_zero = interval is not None and interval[1] <= 0 <= interval[2]
    if not_comparable:
        text = f"{PIPELINE_CHECK} ({not_comparable})"
    elif shortened:
        # not judged, but an interval around zero reads as 'no effect': say how small an effect it would show
        power = f"; the interval holds zero: {_detectable_text(effects, scale)}" if holds_zero and not censored else ""
        text = f"{SHORTENED} ({shortened}{power})"
    elif censored:
        text = f"{INCOMPLETE} ({n} of {n + censored} seeds measured)"
    elif interval is None:
        text = ONE_RUN
    else:
        target = None if value is None else math.log(value) if scale == "ratio" else value
        text = _decide(interval[1], interval[2], kind, target)
        if text == NO_EFFECT:
            text += f" ({_detectable_text(effects, scale)})"
    if interval is None:
        return Verdict(text, n, back(sum(effects) / n) if n else None)
    m, low, high = interval
    return Verdict(text, n, back(m), back(low), back(high))


def rule() -> list[str]:
    """The rule in words, one line per step: the claims table's notes and docs/ablations.md."""
    pct = f"{LEVEL:.0%}"
    return [
        "Ours, per seed: the arm's number against the baseline net of the same seed (the same initial "
        "weights and batch order): a difference in percentage points, or a ratio judged on its logarithm; "
        "oriented so that a positive difference (a ratio above 1) is the paper's direction. A run's own "
        "number where the claim is about one net (the columns' specialisation).",
        f"Interval: the mean over the n seeds with its {pct} two-sided Student t interval (n - 1 degrees "
        "of freedom); for a ratio, the geometric mean and the exponential of the log interval.",
        f"'{NOT_RUN}': no run to measure. '{PIPELINE_CHECK} (why)': the runs are not the paper's data and "
        "training (alexnet.fidelity.comparable: ILSVRC files, 1000 classes, no subset, the paper's epochs); "
        "they show the pipeline works and are no evidence either way.",
        f"'{INCOMPLETE} (k of n seeds measured)': some seeds have no measure (a net that did not reach the "
        f"target within its epochs), so the measured ones are a biased sample. '{ONE_RUN}': n = 1, no spread.",
        f"'{OPPOSITE}': the interval lies below zero. '{NO_EFFECT}': it holds zero; the note gives the effect "
        f"that n runs with this spread would detect {POWER:.0%} of the time (the one-sample t test's power, "
        "from the noncentral t distribution): smaller true effects may well go unseen.",
        f"'{SHORTENED} (why)': real data, trained on a schedule shorter than the authors'; shown with its "
        "interval and never judged as the paper's claim (where the interval holds zero, the note gives the "
        f"effect it would detect {POWER:.0%} of the time, as for '{NO_EFFECT}').",
        f"Above zero: '{MATCHES}' when the interval holds the paper's number (for an 'over X' claim: lies "
        f"above X); '{SMALLER}' / '{LARGER}' when it lies below / above it; '{DIRECTION}' for a claim with "
        f"no number; '{SIZE_UNRESOLVED}' for an 'over X' claim whose interval holds X.",
    ]


__all__ = ["LEVEL", "POWER", "Verdict", "detectable", "judge", "rule", "t_interval"]
