"""The paper's numbers, as data.

Owns every figure quoted from Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks" (NIPS 2012): the results tables (Table 1, Table 2), the ImageNet
Fall 2009 result, the ablation claims, and the architecture's arithmetic. The results stage, the
report and the tests read them from here, so no template ever types a number of the paper by hand.

All errors are percentages (0-100), like the paper. `None` means the paper gives no number for
that cell (a "-" in its tables).
"""

from __future__ import annotations

from dataclasses import dataclass

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

# Section 6: "validation and test error rates differed by no more than 0.1%" in the paper's runs.
VAL_TEST_MAX_GAP = 0.1


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


@dataclass(frozen=True)
class Ablation:
    """A claim of the paper about what one design choice is worth."""

    name: str  # the switch in params.yaml that turns it off, where there is one
    section: str
    claim: str
    top1_gain: float | None = None  # error reduction (percentage points) the paper attributes to it
    top5_gain: float | None = None


ABLATIONS: tuple[Ablation, ...] = (
    Ablation("model.activation", "3.1", "ReLU reaches 25% training error on CIFAR-10 six times "
             "faster than tanh (4-layer CNN, Figure 1)"),
    Ablation("model.lrn", "3.3", "local response normalization reduces top-1 and top-5 error by "
             "1.4% and 1.2%; on CIFAR-10 a 4-layer CNN: 13% error without, 11% with", 1.4, 1.2),
    Ablation("model.overlapping_pool", "3.4", "overlapping pooling (z=3, s=2) instead of z=2, s=2 "
             "reduces top-1 and top-5 error by 0.4% and 0.3%", 0.4, 0.3),
    Ablation("model.groups", "3.2", "the two-GPU net reduces top-1 and top-5 error by 1.7% and "
             "1.2% against a one-GPU net with half the kernels in each convolutional layer", 1.7, 1.2),
    Ablation("augment.pca_lighting", "4.1", "PCA colour augmentation reduces top-1 error by over 1%",
             1.0, None),
    Ablation("model.dropout", "4.2", "without dropout the net overfits substantially; dropout "
             "roughly doubles the iterations needed to converge"),
    Ablation("depth", "7", "removing any single middle convolutional layer costs about 2% top-1",
             2.0, None),
)

# The CIFAR-10 claims, as numbers (Figure 1 and Section 3.3).
FIGURE1_TARGET_ERROR = 25.0  # % training error
FIGURE1_SPEEDUP = 6.0  # tanh needs about six times as many epochs as ReLU to reach it
CIFAR_LRN_TEST_ERROR = {"without": 13.0, "with": 11.0}  # four-layer CNN, test error (%)

# What removing each switch should do to ILSVRC top-1/top-5 error, by ABLATIONS name: the sign
# the paper implies where it gives no number (dropout: "overfits substantially").
ABLATION_DIRECTION = {"model.lrn": 1, "model.overlapping_pool": 1, "model.groups": 1,
                      "augment.pca_lighting": 1, "model.dropout": 1, "depth": 1}

# Section 3 and Figure 2: the architecture's arithmetic.
PARAMETERS = 60_965_224  # the two-group net, with biases ("60 million parameters")
NEURONS_PER_LAYER = (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)
INPUT_SIZE_TEXT = 224  # the text says 224x224x3; the arithmetic works for 227 (or 224 padded by 2)
FEATURE_MAPS = (55, 27, 13, 13, 13, 6)  # conv1, conv2, conv3, conv4, conv5, after pool5
CONV_LAYERS = (  # (name, kernels, kernel shape (h, w, input channels per group), stride)
    ("conv1", 96, (11, 11, 3), 4),
    ("conv2", 256, (5, 5, 48), 1),
    ("conv3", 384, (3, 3, 256), 1),
    ("conv4", 384, (3, 3, 192), 1),
    ("conv5", 256, (3, 3, 192), 1),
)
FC_LAYERS = (("fc6", 4096), ("fc7", 4096), ("fc8", 1000))
LRN = {"k": 2.0, "n": 5, "alpha": 1e-4, "beta": 0.75}  # Section 3.3
POOL = {"size": 3, "stride": 2}  # Section 3.4

# Sections 2, 4 and 5: data and training.
PREPARED_SIZE = 256  # shorter side rescaled to 256, then the central 256x256 patch
TEST_CROPS = 10  # four corners + centre, and their horizontal reflections; softmax averaged
PCA_STD = 0.1
DROPOUT = 0.5
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 0.0005
LEARNING_RATE = 0.01
LR_DROPS = 3
EPOCHS = 90  # "roughly 90 cycles through the training set of 1.2 million images"
TRAINING_DAYS = (5, 6)  # on two NVIDIA GTX 580 3GB GPUs

DATASETS = {
    "ilsvrc2010": {"classes": 1000, "train": 1_200_000, "val": 50_000, "test": 150_000},
    "ilsvrc2012": {"classes": 1000, "train": 1_281_167, "val": 50_000, "test": 100_000},
}

# Not the paper's: torchvision's documented accuracy of its AlexNet weights (IMAGENET1K_V1, the
# later "one weird trick" variant) on ILSVRC-2012 val, single 224 centre crop of a 256 resize.
# Errors = 100 - accuracy. Kept here so a user checking those weights sees what to expect.
TORCHVISION_IMAGENET1K_V1 = {"top1_error": round(100 - 56.522, 3), "top5_error": round(100 - 79.066, 3),
                             "parameters": 61_100_840}
