"""alexnet.evaluation.metrics' error measures: top-k with ties counted against the net, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.errors import PipelineError
from alexnet.evaluation import metrics

# ---------------------------------------------------------------------------------------------
# top-k error on hand-built scores


def test_topk_error_hand_worked():
    scores = np.array([
        [0.1, 0.7, 0.2],   # label 1: top-1 right
        [0.5, 0.3, 0.2],   # label 1: second -> top-1 wrong, top-2 right
        [0.6, 0.3, 0.1],   # label 2: third -> wrong for k = 1 and 2, right for k = 3
        [0.2, 0.2, 0.6],   # label 2: right
    ])
    labels = np.array([1, 1, 2, 2])
    assert metrics.topk_error(scores, labels, 1) == pytest.approx(50.0)
    assert metrics.topk_error(scores, labels, 2) == pytest.approx(25.0)
    assert metrics.topk_error(scores, labels, 3) == pytest.approx(0.0)


def test_topk_error_ties_count_against_the_net():
    # A constant output is 100% wrong at top-1, whatever the class order.
    scores = np.full((4, 3), 1 / 3)
    assert metrics.topk_error(scores, np.array([0, 1, 2, 0]), 1) == 100.0
    # True class tied with one other for first place: wrong at k=1, right at k=2.
    scores = np.array([[0.4, 0.4, 0.2]])
    assert metrics.topk_error(scores, np.array([0]), 1) == 100.0
    assert metrics.topk_error(scores, np.array([1]), 1) == 100.0
    assert metrics.topk_error(scores, np.array([0]), 2) == 0.0
    # A tie below the true class does not matter.
    scores = np.array([[0.6, 0.2, 0.2]])
    assert metrics.topk_error(scores, np.array([0]), 1) == 0.0


def test_topk_error_matches_torch_topk_without_ties():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 20, generator=g)  # continuous: no ties
    labels = torch.randint(0, 20, (500,), generator=g)
    for k in (1, 5):
        hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()
        assert metrics.topk_error(logits, labels, k) == pytest.approx(100 * (1 - hit))
    assert metrics.error_rates(logits.softmax(1), labels) == pytest.approx(metrics.error_rates(logits, labels))


def test_topk_error_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.topk_error(np.zeros((2, 3)), np.array([0, 3]), 1)
    with pytest.raises(ValueError):
        metrics.topk_error(np.zeros((2, 3)), np.array([0]), 1)
    with pytest.raises(PipelineError, match="NaN"):
        metrics.topk_error(np.array([[np.nan, 1.0]]), np.array([0]), 1)


def test_topk_hits_count_by_hand_on_tied_logits():
    """Training's hit count, against a numpy count written from the rule itself: the true class
    is in the top k when at most k classes (itself included) score >= it."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 4, (400, 12), generator=g).float()  # four levels: ties everywhere
    labels = torch.randint(0, 12, (400,), generator=g)
    x, y = logits.numpy(), labels.numpy()
    want = {k: sum(int((row >= row[label]).sum() <= k) for row, label in zip(x, y)) for k in (1, 5)}
    c1, c5 = metrics.topk_hits(logits, labels)
    assert (c1.item(), c5.item()) == (want[1], want[5])
    n1, n5 = metrics.topk_hits(x, y)  # numpy in, numpy out: the same rule
    assert (int(n1), int(n5)) == (want[1], want[5])
    # torch.topk breaks the same ties in the net's favour about as often as not: a real difference.
    assert (logits.topk(1, dim=1).indices[:, 0] == labels).sum().item() > want[1]


def test_reading_metrics_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, alexnet.evaluation.metrics; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
