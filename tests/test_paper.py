"""alexnet.paper's recipe numbers, which the report's setup table prints as the paper's, against
alexnet.config's defaults, which the code calls the paper's settings: one fact spelled twice."""

from __future__ import annotations

from alexnet import paper
from alexnet.config import Params


def test_the_papers_recipe_in_paper_py_is_the_config_defaults():
    p = Params()
    t = p.train
    assert (paper.BATCH_SIZE, paper.LEARNING_RATE, paper.MOMENTUM, paper.WEIGHT_DECAY, paper.EPOCHS) == (
        t.batch_size, t.lr, t.momentum, t.weight_decay, t.epochs)
    assert (paper.PREPARED_SIZE, paper.PCA_STD) == (p.prepare.image_side, p.augment.pca_std)
