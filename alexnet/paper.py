"""The paper's numbers, as data.

Owns every figure quoted from Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks" (NIPS 2012): the results tables (Table 1, Table 2), the ImageNet
Fall 2009 result, the claims the claims table checks (their words and numbers), and the
architecture's arithmetic and recipe. The results stage, the report, the tests and the config's
defaults (alexnet.config: the paper's settings) read them from here, so no number of the paper
is typed twice.

All errors are percentages (0-100), like the paper. `None` means the paper gives no number for
that cell (a "-" in its tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CITATION = ("A. Krizhevsky, I. Sutskever, G. E. Hinton. ImageNet Classification with Deep "
            "Convolutional Neural Networks. NIPS 2012.")


@dataclass(frozen=True)
class Table1Row:
    """One row of Table 1: ILSVRC-2010 test set, top-1 and top-5 error (%)."""

    model: str
    top1_test: float
    top5_test: float
    ours: bool  # True for the paper's own CNN (a row a reproduction can fill), False for a baseline
    note: str = ""


@dataclass(frozen=True)
class Table2Row:
    """One row of Table 2: ILSVRC-2012, top-1/top-5 error (%) on validation, top-5 on test."""

    model: str
    top1_val: float | None
    top5_val: float | None
    top5_test: float | None
    nets: int  # CNNs averaged (0 for the non-CNN baseline)
    pretrained: bool  # the starred rows: pre-trained on ImageNet Fall 2011, with a sixth conv layer
    note: str = ""


# Table 1 (Section 6): ILSVRC-2010 test set. The CNN row is one net with 10-crop testing.
TABLE1: tuple[Table1Row, ...] = (
    Table1Row("Sparse coding", 47.1, 28.2, ours=False,
              note="best ILSVRC-2010 competition entry (six sparse-coding models averaged)"),
    Table1Row("SIFT + FVs", 45.7, 25.7, ours=False,
              note="best published result before the paper (two classifiers on Fisher Vectors)"),
    Table1Row("CNN", 37.5, 17.0, ours=True, note="the paper's network"),
)

# Table 2 (Section 6): ILSVRC-2012. Test labels are withheld, so only the competition entries have
# test numbers. * = pre-trained on the ImageNet Fall 2011 release (15M images, 22K categories) with
# an extra sixth convolutional layer after the last pooling layer, then fine-tuned on ILSVRC-2012.
TABLE2: tuple[Table2Row, ...] = (
    Table2Row("SIFT + FVs", None, None, 26.2, nets=0, pretrained=False,
              note="second-best ILSVRC-2012 entry"),
    Table2Row("1 CNN", 40.7, 18.2, None, nets=1, pretrained=False),
    Table2Row("5 CNNs", 38.1, 16.4, 16.4, nets=5, pretrained=False,
              note="predictions of five similar CNNs averaged"),
    Table2Row("1 CNN*", 39.0, 16.6, None, nets=1, pretrained=True),
    Table2Row("7 CNNs*", 36.7, 15.4, 15.3, nets=7, pretrained=True,
              note="two pre-trained CNNs averaged with the five above"),
)


@dataclass(frozen=True)
class Fall2009Result:
    """Section 6: ImageNet Fall 2009 (10,184 categories, 8.9M images, half train, half test)."""

    classes: int = 10184
    images: int = 8_900_000
    top1_error: float = 67.4
    top5_error: float = 40.9
    previous_best_top1_error: float = 78.1
    previous_best_top5_error: float = 60.9
    note: str = "net with a sixth convolutional layer; best published results before: 78.1 / 60.9"


FALL_2009 = Fall2009Result()


# The CIFAR-10 claims, as numbers (Figure 1 and Section 3.3).
FIGURE1_SPEEDUP = 6.0  # tanh needs about six times as many epochs as ReLU to reach 25% training error
CIFAR_LRN_TEST_ERROR = {"without": 13.0, "with": 11.0}  # four-layer CNN, test error (%)
# How long the authors trained the 13%/11% nets (the final layer-params-conv-local-11pct.cfg's
# methodology; its first commit said 300): ~350 epochs on batches 1-4 (40,000 images: 280 passes
# over 50,000), then ~150 on all five, then 10 at lr/10 and 10 at lr/100: ~450 passes.
CONV_LOCAL_EPOCHS = 450


@dataclass(frozen=True)
class Claim:
    """One claim the claims table checks: the paper's words and its number, as alexnet.claims.verdict reads it."""

    key: str
    section: str
    words: str  # the paper's sentence
    scale: Literal["points", "ratio"]  # percentage points of error, or a ratio (6 = "six times")
    kind: Literal["about", "at_least", "direction"]  # "by 1.4%", "by over 1%", or a sign only
    value: float | None = None  # the paper's number on `scale`; None for a direction only


_COLUMNS = ("This scheme reduces our top-1 and top-5 error rates by 1.7% and 1.2%, respectively, as "
            "compared with a net with half as many kernels in each convolutional layer trained on one GPU.")
_LRN = "Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%, respectively."
_OVERLAP = ("This scheme reduces the top-1 and top-5 error rates by 0.4% and 0.3%, respectively, as compared "
            "with the non-overlapping scheme s = 2, z = 2, which produces output of equivalent dimensions.")
CLAIMS: tuple[Claim, ...] = (
    Claim("relu-speed", "3.1, Fig. 1", "A four-layer convolutional neural network with ReLUs (solid line) reaches "
          "a 25% training error rate on CIFAR-10 six times faster than an equivalent network with tanh neurons "
          "(dashed line).", "ratio", "about", FIGURE1_SPEEDUP),
    Claim("columns-top1", "3.2", _COLUMNS, "points", "about", 1.7),
    Claim("columns-top5", "3.2", _COLUMNS, "points", "about", 1.2),
    Claim("columns-time", "3.2", "The two-GPU net takes slightly less time to train than the one-GPU net.",
          "ratio", "direction"),
    Claim("lrn-top1", "3.3", _LRN, "points", "about", 1.4),
    Claim("lrn-top5", "3.3", _LRN, "points", "about", 1.2),
    Claim("cifar-lrn", "3.3", "We also verified the effectiveness of this scheme on the CIFAR-10 dataset: a "
          "four-layer CNN achieved a 13% test error rate without normalization and 11% with normalization.",
          "points", "about", CIFAR_LRN_TEST_ERROR["without"] - CIFAR_LRN_TEST_ERROR["with"]),
    Claim("overlap-top1", "3.4", _OVERLAP, "points", "about", 0.4),
    Claim("overlap-top5", "3.4", _OVERLAP, "points", "about", 0.3),
    Claim("overlap-overfit", "3.4", "We generally observe during training that models with overlapping pooling "
          "find it slightly more difficult to overfit.", "points", "direction"),
    Claim("crops-flips-overfit", "4.1", "Without this scheme [random 224x224 patches and their horizontal "
          "reflections], our network suffers from substantial overfitting.", "points", "direction"),
    Claim("pca-top1", "4.1", "This scheme [PCA colour augmentation] reduces the top-1 error rate by over 1%.",
          "points", "at_least", 1.0),
    Claim("dropout-overfit", "4.2", "Without dropout, our network exhibits substantial overfitting.",
          "points", "direction"),
    Claim("dropout-converge", "4.2", "Dropout roughly doubles the number of iterations required to converge.",
          "ratio", "about", 2.0),
    Claim("weight-decay-train", "5", "Weight decay here is not merely a regularizer: it reduces the model's "
          "training error.", "points", "direction"),
    Claim("columns-specialise", "6.1", "The kernels on GPU 1 are largely color-agnostic, while the kernels on "
          "GPU 2 are largely color-specific. This kind of specialization occurs during every run.",
          "points", "direction"),
    Claim("depth-top1", "7", "Removing any of the middle layers results in a loss of about 2% for the top-1 "
          "performance of the network.", "points", "about", 2.0),
)
CLAIMS_BY_KEY = {c.key: c for c in CLAIMS}

# Section 3 and Figure 2: the architecture's arithmetic.
PARAMETERS = 60_965_224  # the two-group net, with biases ("60 million parameters")
NEURONS_PER_LAYER = (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)
FEATURE_MAPS = (55, 27, 13, 13, 13, 6)  # conv1, conv2, conv3, conv4, conv5, after pool5
CONV_LAYERS = (  # (name, kernels, kernel shape (h, w, input channels per group), stride)
    ("conv1", 96, (11, 11, 3), 4),
    ("conv2", 256, (5, 5, 48), 1),
    ("conv3", 384, (3, 3, 256), 1),
    ("conv4", 384, (3, 3, 192), 1),
    ("conv5", 256, (3, 3, 192), 1),
)
FC_LAYERS = (("fc6", 4096), ("fc7", 4096), ("fc8", 1000))

# Sections 2, 4 and 5: data and training (the report's setup table sets them beside this run's).
PREPARED_SIZE = 256  # shorter side rescaled to 256, then the central 256x256 patch
PCA_STD = 0.1
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 0.0005
LEARNING_RATE = 0.01
EPOCHS = 90  # "roughly 90 cycles through the training set of 1.2 million images"
CLASSES = 1000  # ILSVRC's classes

DATASETS = {
    "ilsvrc2010": {"classes": 1000, "train": 1_200_000, "val": 50_000, "test": 150_000},
    "ilsvrc2012": {"classes": 1000, "train": 1_281_167, "val": 50_000, "test": 100_000},
}