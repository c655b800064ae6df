"""alexnet.evaluation.kernels: conv1's colour per column (Figure 3 as a number), against hand-made kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alexnet.evaluation.kernels import colour_share, column_colour


def _kernel(r, g, b, side=3):
    """A kernel whose channels are the same pattern scaled by (r, g, b)."""
    pattern = np.arange(1, side * side + 1, dtype=np.float64).reshape(side, side)
    return np.stack([r * pattern, g * pattern, b * pattern])


def test_colour_share_by_hand():
    k = np.stack([_kernel(1, 1, 1), _kernel(1, 0, 0), _kernel(1, -1, 0), _kernel(0, 0, 0)])
    # grey: no energy off the channel mean; one channel (1, 0, 0): (2/3)^2 + 2 (1/3)^2 = 2/3 of it;
    # opponent (1, -1, 0): the channel mean is 0, all of it; a dead kernel: 0, not a division by zero
    np.testing.assert_allclose(colour_share(k), [0.0, 2 / 3, 1.0, 0.0], atol=1e-12)


def test_a_specialised_net_against_chance():
    grey, colour = _kernel(1, 1, 1), _kernel(0, 1, 0)
    m = column_colour(np.stack([grey] * 4 + [colour] * 4))
    assert (m["conv1_colour_column1"], m["conv1_colour_column2"]) == (0.0, pytest.approx(200 / 3, abs=1e-3))
    # Dealing the 4 grey and 4 colour kernels at random, column 1 gets K colour ones, K hypergeometric
    # (8, 4, 4): P(K) = C(4,K) C(4,4-K) / C(8,4), and a gap of |2K - 4| / 4 x 66.67 points.
    chance = sum(math.comb(4, k) * math.comb(4, 4 - k) / math.comb(8, 4) * abs(2 * k - 4) / 4 * 200 / 3
                 for k in range(5))
    assert chance == pytest.approx(17.14, abs=0.01)
    assert m["conv1_column_specialisation"] == pytest.approx(200 / 3 - chance, abs=1.5)  # 1000 random deals
    assert column_colour(np.stack([grey] * 4 + [colour] * 4)) == m  # the same net, the same number
    # the columns mixed evenly: a gap of 0, below chance
    mixed = column_colour(np.stack([grey, colour] * 4))
    assert mixed["conv1_colour_column1"] == mixed["conv1_colour_column2"]
    assert mixed["conv1_column_specialisation"] == pytest.approx(-chance, abs=1.5)


def test_no_specialisation_averages_zero():
    """Random kernels, dealt to columns by nothing but their order: about 0 on average."""
    rng = np.random.default_rng(0)
    values = [column_colour(rng.normal(size=(48, 3, 5, 5)))["conv1_column_specialisation"] for _ in range(40)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
