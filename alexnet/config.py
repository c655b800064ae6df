"""Typed configuration: every section of params.yaml as a dataclass.

Owns the one place where params are read and checked. Each top-level key of params.yaml maps
one to one onto a dataclass below (ffcv-imagenet style); an unknown key, a wrong type or an
impossible value fails at once with a `ConfigError` that names the key and what was expected
(nanoGPT style: loud, never ignored).

Defaults are the paper's settings (Krizhevsky et al. 2012, see shared/PAPER.md). params.yaml
overrides a few of them for the embedded tiny dataset, each marked there.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from alexnet import paper
from alexnet.errors import ConfigError


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


# data.root's default: an empty folder in the repository (data/user/README.md), for the sources
# that read no files of the user's; dvc.yaml's download stage depends on data.root.
USER_FILES = "data/user"
# How a param bears on the results, where it is not the recipe (dataclass field metadata; read by
# execution_params): SAME_BYTES, the outputs are the same bytes whatever its value, so dvc.yaml
# does not list it (`-S train.loader_workers=4` reruns nothing) and a checkpoint made with another
# value is resumed; SAME_RECIPE, the outputs may differ in their last bits or in how they are
# stored, so dvc.yaml lists it, but a run still follows the paper (config.deviations skips it).
SAME_BYTES = {"execution": "same bytes"}
SAME_RECIPE = {"execution": "same recipe"}
MAX_SEED = 2**63 - 1  # numpy's SeedSequence and torch.manual_seed both take any integer in [0, 2**63)


def _check_seed(value: int, key: str) -> None:
    _check(0 <= value <= MAX_SEED, key, "an integer in [0, 2**63)", value)


@dataclass(frozen=True)
class SubsetConfig:
    """Which part of the official files to take (data.subset), and whether a short copy is accepted.

    The default takes everything and requires every image the devkit lists. A subset (what
    Imagenette is for ImageNet) is drawn deterministically from the files' own listing: `wnids`,
    or `classes` classes chosen with `seed`; then `train_per_class` / `eval_per_class` images of
    each (0 = all), chosen with `seed`. The same readers stream it; prepare records it.
    """

    classes: int = 0  # 0 = all classes (or exactly `wnids`)
    wnids: list[str] = field(default_factory=list)  # these WordNet ids, e.g. [n01440764, n02102040]
    train_per_class: int = 0  # 0 = all
    eval_per_class: int = 0  # evaluation split (val; ILSVRC-2010: test); 0 = all
    seed: int = 0
    # Accept files holding fewer images than the devkit lists (a deliberately partial copy): the
    # images present are used and the shortfall is recorded (meta.json, the report).
    allow_partial: bool = False

    def __post_init__(self) -> None:
        for key in ("classes", "train_per_class", "eval_per_class"):
            value = getattr(self, key)
            _check(value >= 0, f"data.subset.{key}", "an integer >= 0 (0 = all)", value)
        _check_seed(self.seed, "data.subset.seed")
        for i, w in enumerate(self.wnids):
            _check(bool(re.match(r"^n\d{8}$", w)), f"data.subset.wnids[{i}]", "a WordNet id like n01440764", w)
        _check(len(set(self.wnids)) == len(self.wnids), "data.subset.wnids", "distinct WordNet ids", self.wnids)
        _check(not (self.wnids and self.classes), "data.subset.classes",
               "0 when data.subset.wnids lists the classes (set one of the two)", self.classes)

    @property
    def active(self) -> bool:
        """True if anything less than the whole dataset is asked for."""
        return bool(self.classes or self.wnids or self.train_per_class or self.eval_per_class)


@dataclass(frozen=True)
class DataConfig:
    """Where the raw dataset comes from (stage `download`)."""

    # tiny: generated ILSVRC-2012-format dataset; ilsvrc2012 / ilsvrc2010: the official files in
    # `root`; imagefolder: `root`/train and `root`/val class folders; url: the official
    # ILSVRC-2012 (or -2010, see url_layout) files downloaded from `urls` (your own mirror).
    source: Literal["tiny", "ilsvrc2012", "ilsvrc2010", "imagefolder", "url"] = "tiny"
    # dvc.yaml's download stage depends on this folder (DVC hashes every file in it), so it must
    # exist for every source: the tiny and url sources leave the repository's empty USER_FILES alone.
    root: str = USER_FILES
    verify_md5: bool = True  # false only for re-packed copies whose MD5s differ from the published
    urls: dict[str, str] = field(default_factory=dict)  # file name -> http(s)/file URL
    url_layout: Literal["ilsvrc2012", "ilsvrc2010"] = "ilsvrc2012"
    subset: SubsetConfig = field(default_factory=SubsetConfig)

    def __post_init__(self) -> None:
        _check(bool(self.root), "data.root", f"a folder ({USER_FILES} when data.source needs no files of yours)",
               self.root)
        if self.source in ("ilsvrc2012", "ilsvrc2010", "imagefolder"):
            _check(Path(self.root) != Path(USER_FILES), "data.root",
                   f"the folder holding your files when data.source is {self.source}", self.root)
        if self.source == "url":
            _check(bool(self.urls), "data.urls", "a mapping of file name to URL when data.source is url", self.urls)
            for name, url in self.urls.items():
                _check(url.split("://")[0] in ("http", "https", "file"), f"data.urls.{name}",
                       "an http://, https:// or file:// URL", url)


@dataclass(frozen=True)
class TinyConfig:
    """The embedded tiny ImageNet-format dataset (data.source = tiny)."""

    classes: int = 10
    train_per_class: int = 100
    val_per_class: int = 20
    min_side: int = 180  # generated images have sides in [min_side, max_side]: varied sizes and aspects
    max_side: int = 400
    seed: int = 0

    def __post_init__(self) -> None:
        _check(2 <= self.classes <= 100, "tiny.classes", "an integer in [2, 100]", self.classes)
        _check(self.train_per_class >= 1, "tiny.train_per_class", "a positive integer", self.train_per_class)
        _check(self.val_per_class >= 1, "tiny.val_per_class", "a positive integer", self.val_per_class)
        _check(32 <= self.min_side <= self.max_side, "tiny.min_side",
               f"32 <= min_side <= max_side ({self.max_side})", self.min_side)
        _check(self.max_side <= 4096, "tiny.max_side", "an integer <= 4096", self.max_side)
        _check_seed(self.seed, "tiny.seed")


MAX_SHARD_BYTES = 4 << 30  # one shard's pixels are buffered in memory while it fills


@dataclass(frozen=True)
class PrepareConfig:
    """Resize to the shorter side `image_side`, centre-crop image_side x image_side (paper, Section 2)."""

    image_side: int = paper.PREPARED_SIZE  # not `size`: DVC's run cache drops params of that name (DVC #10296)
    shard_size: int = field(default=1024, metadata=SAME_RECIPE)  # images per shard file
    workers: int = field(default=0, metadata=SAME_BYTES)  # 0 = all cores
    draft: bool = field(default=True, metadata=SAME_RECIPE)  # Pillow decodes JPEGs downscaled in the DCT domain
    # npy: raw uint8 shards read through memory maps (196 kB per 256x256 image); jpeg: each image
    # stored as a 4:4:4 JPEG of jpeg_quality (~36 kB, 41.9 dB PSNR at 95 on photos), decoded by
    # the loader, on the GPU with CUDA (benchmarks/bench_jpeg.py measures the choice).
    format: Literal["npy", "jpeg"] = field(default="npy", metadata=SAME_RECIPE)
    jpeg_quality: int = field(default=95, metadata=SAME_RECIPE)
    # Images whose header declares more pixels, or a longer side more than this many times the
    # shorter, are quarantined before they are decoded (a 1x16000 PNG would otherwise be resized
    # to 256 x 4,096,000 first: 3 GB). ImageNet's largest training image is ~4,300 x 3,000 and its
    # most elongated ~1:12.
    max_pixels: int = 89_478_485  # Pillow's own decompression-bomb limit
    max_aspect: float = 32.0

    def __post_init__(self) -> None:
        _check(32 <= self.image_side <= 4096, "prepare.image_side", "an integer in [32, 4096]", self.image_side)
        _check(self.shard_size >= 1, "prepare.shard_size", "a positive integer", self.shard_size)
        shard_bytes = self.shard_size * self.image_side * self.image_side * 3
        _check(shard_bytes <= MAX_SHARD_BYTES, "prepare.shard_size",
               f"at most {MAX_SHARD_BYTES // (self.image_side * self.image_side * 3)} images of "
               f"{self.image_side}x{self.image_side} (a shard is held in memory: {MAX_SHARD_BYTES >> 30} GiB at most)",
               self.shard_size)
        _check(self.max_pixels >= self.image_side * self.image_side, "prepare.max_pixels",
               f"an integer >= image_side**2 ({self.image_side * self.image_side})", self.max_pixels)
        _check(self.max_aspect >= 1.0, "prepare.max_aspect", "a number >= 1", self.max_aspect)
        _check(self.workers >= 0, "prepare.workers", "an integer >= 0 (0 = all cores)", self.workers)
        # Checked here too (not only when read from YAML): benchmarks and tests build it directly.
        _check(self.format in ("npy", "jpeg"), "prepare.format", "'npy' or 'jpeg'", self.format)
        _check(isinstance(self.jpeg_quality, int) and not isinstance(self.jpeg_quality, bool)
               and 1 <= self.jpeg_quality <= 100, "prepare.jpeg_quality", "an integer in [1, 100]", self.jpeg_quality)


@dataclass(frozen=True)
class StatsConfig:
    """Mean image and RGB PCA over the training set (paper, Sections 2 and 4.1)."""

    workers: int = field(default=0, metadata=SAME_BYTES)  # 0 = all cores: exact integer sums

    def __post_init__(self) -> None:
        _check(self.workers >= 0, "stats.workers", "an integer >= 0 (0 = all cores)", self.workers)


@dataclass(frozen=True)
class ModelConfig:
    """The network (paper, Section 3) and the switches for its ablations and variants."""

    arch: Literal["paper", "torchvision"] = "paper"  # torchvision = the later "one weird trick" net
    input_size: Literal[224, 227] = 224  # 224 pads conv1 by 2; 227 is Caffe's unpadded crop
    groups: Literal[1, 2] = 2  # 2 = the paper's two-GPU net; 1 = one-GPU net, half the kernels
    width: float = 1.0  # channel multiplier for every layer; 1.0 is the paper
    activation: Literal["relu", "tanh"] = "relu"
    lrn: bool = True
    lrn_size: int = 5
    lrn_alpha: float = 1e-4
    lrn_beta: float = 0.75
    lrn_k: float = 2.0
    # PyTorch and Caffe (and cuda-convnet, the paper's code) divide alpha by n; the paper's
    # equation does not. True follows the frameworks.
    lrn_divide_alpha_by_n: bool = True
    # column (the paper, Section 3.2): in the two-group net each column's maps are normalised
    # among themselves, the window stopping at the column boundary (cuda-convnet2's 2-GPU config:
    # rnorm1a/rnorm1b over 48 maps each); all: one window over all maps of the layer (Caffe's
    # bvlc_alexnet). With groups 1 there is one column and the two are the same.
    lrn_span: Literal["column", "all"] = "column"
    overlapping_pool: bool = True  # 3x3 stride 2 (paper) or 2x2 stride 2
    dropout: float = 0.5
    conv6: bool = False  # the sixth conv layer of the paper's pre-trained (starred) models
    # Section 7's depth claim: 3, 4 or 5 removes that middle conv layer (0 = none); the next layer
    # takes its input, keeping its own grouping (without conv3 the columns first meet in fc6).
    remove_conv: Literal[0, 3, 4, 5] = 0
    # Without conv5, conv4 has conv5's 256 maps, so that fc6 keeps its 256x6x6 input and only depth
    # changes (the paper says only "removing any of the middle layers"); false: fc6 takes conv4's
    # 384 maps (384x6x6, +30% parameters). Removing conv3 or conv4 leaves fc6's input as it is.
    remove_conv_keep_fc6: bool = True
    # paper: every layer N(0, init_std); he: fc8 N(0, init_std), every other layer
    # N(0, sqrt(2 / fan_in)) (docs/fidelity.md, "Initialisation": why the tiny run needs it).
    init: Literal["paper", "he"] = "paper"
    init_std: float = 0.01
    init_bias_one: bool = True  # biases 1 in conv2, conv4, conv5, fc6, fc7
    # The net's input (raw 0-255 pixels minus the mean, as the paper) is multiplied by this
    # constant before conv1. 1.0 is the paper. With raw pixels (std ~60) conv1's weight gradient
    # is ~60x larger relative to its weights than with unit-scale input, which makes He-scaled
    # init diverge at any usable lr; 1/64 makes the input unit-scale.
    input_scale: float = 1.0
    # How conv2, conv4, conv5 (and conv6) compute their two groups: grouped, the library's grouped
    # convolution; dense, one convolution with a block-diagonal weight (alexnet.model.layers.GroupedConv2d).
    # The same net and parameters either way, summed in another order: speed, not the recipe.
    grouped_conv: Literal["grouped", "dense"] = field(default="grouped", metadata=SAME_RECIPE)

    def __post_init__(self) -> None:
        _check(0.0 < self.width <= 4.0, "model.width", "a number in (0, 4]", self.width)
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)
        _check(self.lrn_size >= 1 and self.lrn_size % 2 == 1, "model.lrn_size", "an odd positive integer", self.lrn_size)
        _check(self.init_std > 0, "model.init_std", "a positive number", self.init_std)
        _check(self.input_scale > 0, "model.input_scale", "a positive number", self.input_scale)
        if self.arch == "torchvision":
            _check(self.width == 1.0, "model.width", "1.0 with arch torchvision (its layers are fixed)", self.width)
            _check(self.input_scale == 1.0, "model.input_scale", "1.0 with arch torchvision (it has its own normalisation)",
                   self.input_scale)
            _check(self.remove_conv == 0, "model.remove_conv", "0 with arch torchvision (its layers are fixed)",
                   self.remove_conv)


PcaMagnitude = Literal["eigval_01", "sqrt_eigval", "eigval_255"]  # augment.pca_magnitude, below


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (paper, Section 4.1); each switchable for ablations."""

    random_crop: bool = True  # random input_size crops of the prepared image, else the centre crop
    flip: bool = True
    pca_lighting: bool = True
    pca_std: float = paper.PCA_STD  # alpha_i ~ N(0, pca_std)
    # What multiplies alpha_i along principal component i: the paper writes lambda_i (an
    # eigenvalue, i.e. a variance) without saying on which pixel scale. eigval_01: lambda_i of
    # pixels on [0, 1], the formula taken literally as fb.resnet.torch, MXNet/GluonCV and
    # tensorpack do (~3.2 levels RMS per channel on ImageNet). sqrt_eigval (default):
    # sqrt(lambda_i), the component's standard deviation, as the authors' own cuda-convnet2 does
    # (~7.2 levels). eigval_255: lambda_i of 0-255 pixels literally (~820 levels: the image is
    # wiped out). alexnet/data/input/augment.py and docs/fidelity.md give the derivations.
    pca_magnitude: PcaMagnitude = "sqrt_eigval"
    mean: Literal["image", "channel", "none"] = "image"  # what is subtracted: the paper's mean image

    def __post_init__(self) -> None:
        _check(self.pca_std >= 0, "augment.pca_std", "a number >= 0", self.pca_std)


# train.compile_mode: torch.compile's modes. reduce-overhead replays the step as CUDA graphs
# (one launch for all its kernels); max-autotune also benchmarks kernel choices at compile time,
# with CUDA graphs or without.
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
_NO_CUDAGRAPHS = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


def without_cudagraphs(mode: str) -> str:
    """The torch.compile mode that compiles as `mode` does, without CUDA graphs."""
    return _NO_CUDAGRAPHS.get(mode, mode)


@dataclass(frozen=True)
class TrainConfig:
    """SGD and its schedule (paper, Section 5), devices and determinism."""

    # one net per seed: the ensemble (dvc.yaml's foreach, so not a param of each net's stage)
    seeds: list[int] = field(default_factory=lambda: [0], metadata=SAME_RECIPE)
    epochs: int = paper.EPOCHS
    batch_size: int = paper.BATCH_SIZE
    lr: float = paper.LEARNING_RATE
    momentum: float = paper.MOMENTUM
    weight_decay: float = paper.WEIGHT_DECAY
    # paper: v <- m v - wd lr w - lr g (lr inside v); pytorch: torch.optim.SGD (lr outside v)
    update_rule: Literal["paper", "pytorch"] = "paper"
    # Biases: the paper's text gives them the same lr and decay as weights (1.0, 1.0); the
    # authors' cuda-convnet2 configs and Caffe's bvlc_alexnet use 2x the lr and no decay (2.0, 0.0).
    bias_lr_mult: float = 1.0
    bias_decay_mult: float = 1.0
    # plateau (the paper): lr / 10 when validation top-1 error stops improving, max_lr_drops
    # times, then stop when it stops improving once more (plateau_stop) or at `epochs`.
    # step (Caffe's bvlc_alexnet: lr / 10 every 100,000 iterations = 20 epochs at batch 256).
    schedule: Literal["plateau", "step"] = "plateau"
    lr_factor: float = 0.1
    # Ours, not the paper's (which decided by eye): epochs without improvement of the validation
    # top-1 error before it counts as stopped improving, and the improvement (percentage points)
    # that counts.
    plateau_patience: int = 2
    plateau_threshold: float = 0.001
    max_lr_drops: int = 3  # the paper: "reduced three times prior to termination"
    plateau_stop: bool = True  # stop at the plateau after the last drop (false: run to `epochs`)
    step_epochs: list[int] = field(default_factory=lambda: [30, 60, 80])
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=SAME_RECIPE)
    deterministic: bool = field(default=True, metadata=SAME_RECIPE)
    # bf16 autocast: the convolutions and matmuls in bfloat16, the weights, the LRN and the loss in
    # fp32 (the GPU profile, configs/ilsvrc2012.yaml); the recipe at another precision.
    amp: Literal["none", "bf16"] = field(default="none", metadata=SAME_RECIPE)
    channels_last: bool = field(default=False, metadata=SAME_RECIPE)
    # torch.compile: the net and the paper's update (alexnet.training.optim.PaperSGD.compile_update).
    # Its kernels round in another order (on the CPU the update differs from eager's by up to an ulp:
    # tests/test_optim.py), so the same recipe in other bits: switching it reruns train, and a
    # checkpoint made either way resumes. compile_mode: how (CompileMode, above).
    compile: bool = field(default=False, metadata=SAME_RECIPE)
    compile_mode: CompileMode = field(default="default", metadata=SAME_RECIPE)
    loader_workers: int = field(default=0, metadata=SAME_BYTES)  # 0 = chosen from the machine; same batches
    # Where a jpeg store's training and validation images are decoded (alexnet.data.input.loader):
    # auto (the device's decoder on CUDA, the reader threads on the CPU), cpu, device, or split:
    # the first decode_device_share of every batch on the device, the rest by the reader threads
    # (a fixed split). The same bytes on the CPU; nvJPEG's pixels may differ from libjpeg-turbo's by a level.
    decode: Literal["auto", "cpu", "device", "split"] = field(default="auto", metadata=SAME_RECIPE)
    decode_device_share: float = field(default=0.5, metadata=SAME_RECIPE)
    max_loss: float = field(default=100.0, metadata=SAME_BYTES)  # a loss above this (or NaN) stops the run
    # Learning-start diagnostic: after this many steps, a training loss still within 5% of
    # ln(classes) (chance) is reported once, with the usual causes. 0 = off. Never changes the run.
    chance_warn_steps: int = field(default=10000, metadata=SAME_BYTES)  # a warning only

    def __post_init__(self) -> None:
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "train.seeds",
               "a non-empty list of distinct integers", self.seeds)
        for i, seed in enumerate(self.seeds):
            _check_seed(seed, f"train.seeds[{i}]")
        _check(self.epochs >= 1, "train.epochs", "a positive integer", self.epochs)
        _check(self.batch_size >= 1, "train.batch_size", "a positive integer", self.batch_size)
        _check(self.lr > 0, "train.lr", "a positive number", self.lr)
        _check(0.0 <= self.decode_device_share <= 1.0, "train.decode_device_share", "a fraction in [0, 1]",
               self.decode_device_share)
        _check(0 <= self.momentum < 1, "train.momentum", "a number in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "train.weight_decay", "a number >= 0", self.weight_decay)
        _check(0 < self.lr_factor < 1, "train.lr_factor", "a number in (0, 1)", self.lr_factor)
        _check(self.plateau_patience >= 1, "train.plateau_patience", "a positive integer", self.plateau_patience)
        _check(self.plateau_threshold >= 0, "train.plateau_threshold", "a number >= 0", self.plateau_threshold)
        _check(self.max_lr_drops >= 0, "train.max_lr_drops", "an integer >= 0", self.max_lr_drops)
        _check(list(self.step_epochs) == sorted(self.step_epochs) and all(e >= 1 for e in self.step_epochs),
               "train.step_epochs", "an increasing list of positive epochs", self.step_epochs)
        _check(self.compile_mode in typing.get_args(CompileMode), "train.compile_mode",
               "one of " + ", ".join(repr(m) for m in typing.get_args(CompileMode)), self.compile_mode)
        # a mode without compile would be silently ignored
        _check(self.compile or self.compile_mode == "default", "train.compile_mode",
               "'default' while train.compile is false (the mode applies to a compiled net)", self.compile_mode)
        _check(self.loader_workers >= 0, "train.loader_workers", "an integer >= 0", self.loader_workers)
        _check(self.max_loss > 0, "train.max_loss", "a positive number", self.max_loss)
        _check(self.bias_lr_mult > 0, "train.bias_lr_mult", "a positive number", self.bias_lr_mult)
        _check(self.bias_decay_mult >= 0, "train.bias_decay_mult", "a number >= 0", self.bias_decay_mult)
        _check(self.chance_warn_steps >= 0, "train.chance_warn_steps", "an integer >= 0 (0 = off)",
               self.chance_warn_steps)


@dataclass(frozen=True)
class EvaluateConfig:
    """Multi-crop testing (paper, Section 4.1) on the evaluation split."""

    batch_size: int = field(default=128, metadata=SAME_BYTES)  # images per batch (ten crops: 10x as many patches)

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "evaluate.batch_size", "a positive integer", self.batch_size)


@dataclass(frozen=True)
class AnalyzeConfig:
    """Figures 3 and 4, fc7 retrieval, binary codes and t-SNE (paper, Section 6.1)."""

    train_subset: int = 0  # training images indexed for retrieval; 0 = all
    queries: int = 5  # Figure 4 right: query images
    neighbours: int = 6  # Figure 4 right: nearest training images shown per query
    top5_images: int = 8  # Figure 4 left
    precision_k: list[int] = field(default_factory=lambda: [1, 5, 10])
    code_bits: int = 64  # length of the binary codes compressed from fc7
    tsne_points: int = 1000
    tsne_perplexity: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.train_subset >= 0, "analyze.train_subset", "an integer >= 0 (0 = all)", self.train_subset)
        _check(self.queries >= 1, "analyze.queries", "a positive integer", self.queries)
        _check(self.neighbours >= 1, "analyze.neighbours", "a positive integer", self.neighbours)
        _check(self.top5_images >= 1, "analyze.top5_images", "a positive integer", self.top5_images)
        _check(len(self.precision_k) >= 1 and all(k >= 1 for k in self.precision_k), "analyze.precision_k",
               "a non-empty list of positive integers", self.precision_k)
        _check(8 <= self.code_bits <= 4096, "analyze.code_bits", "an integer in [8, 4096]", self.code_bits)
        _check(self.tsne_points >= 10, "analyze.tsne_points", "an integer >= 10", self.tsne_points)
        _check(self.tsne_perplexity > 0, "analyze.tsne_perplexity", "a positive number", self.tsne_perplexity)
        _check_seed(self.seed, "analyze.seed")


@dataclass(frozen=True)
class CifarConfig:
    """The paper's CIFAR-10 claims: Figure 1 (ReLU vs tanh) and the LRN result (Section 3.3).

    Figure 1's net is cuda-convnet's layers-18pct (conv 32-32-64 5x5 and one fc layer), trained
    with no regularisation; the LRN claim's nets are layers-conv-local-13pct and -11pct with their
    layer-params (alexnet/claims/cifar/nets.py, alexnet/claims/cifar/training.py). Defaults are the authors'
    settings where they give one; the lr grid, the seeds and the epoch limit are this project's protocol.
    """

    # Where the images come from (stage cifar_download; alexnet/claims/cifar/data.py): tiny, a generated
    # set in the official python format; python / binary, the official cifar-10-python.tar.gz /
    # cifar-10-binary.tar.gz at `path` (MD5-checked); folder, <path>/{train,test}/<class>/*.png|jpg.
    source: Literal["tiny", "python", "binary", "folder"] = "tiny"
    path: str = ""
    verify_md5: bool = True  # false only for a deliberately re-packed archive
    allow_partial: bool = False  # accept other than 5,000 training and 1,000 test images per class
    tiny_train_per_class: int = 50  # the generated set: images per class in data_batch_1..5
    tiny_test_per_class: int = 20  # ... and in test_batch
    tiny_seed: int = 0
    # Figure 1: one run per rnorm arm x activation x lr of the grid (seed grid_seed), then the
    # chosen lr per arm and activation with every one of `seeds` (the evaluation seeds)
    figure1_protocol: Literal["authors", "modern"] = "authors"  # alexnet/claims/cifar/nets.py: init, bias rate, pooling
    figure1_rnorm: list[bool] = field(default_factory=lambda: [True, False])  # arms: layers-18pct's rnorm layers on/off
    width: float = 1.0  # channel multiplier of the 32-32-64 conv layers; 1.0 is cuda-convnet's net
    epochs: int = 40  # a net stops at the target error or after this many epochs (Figure 1's axis ends at 35)
    batch_size: int = 128
    # tried per arm and activation, sqrt(2) apart around layer-params-18pct's epsW 0.001; a chosen rate at
    # an edge of the rates tried adds the next one beyond it, up to lr_grid_extend times
    lr_grid: list[float] = field(default_factory=lambda: [0.00025, 0.00035, 0.0005, 0.0007, 0.001, 0.0014, 0.002,
                                                          0.0028, 0.004])
    lr_grid_extend: int = 3
    momentum: float = 0.9
    target_error: float = 25.0  # Figure 1: epochs to reach 25% training error
    input_scale: float = 1.0  # the mean-subtracted 0-255 pixels times this (the authors: 1)
    grid_seed: int = 100  # the lr is chosen on this seed, which is not one of `seeds`
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # evaluation seeds (Figure 1)
    # The LRN claim: layers-conv-local-13pct / -11pct and their layer-params files
    lrn_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])  # [] leaves the LRN claim out of this run
    lrn_epochs: list[int] = field(default_factory=lambda: [paper.CONV_LOCAL_EPOCHS - 20, 10, 10])  # at lrn_lr, /10, /100
    lrn_lr: float = 0.001  # epsW; biases at twice it (epsB)
    lrn_momentum: float = 0.9
    lrn_weight_decay: float = 0.004  # wc of local3 and local4 (conv layers 0)
    lrn_fc10_weight_decay: list[float] = field(default_factory=lambda: [0.004, 0.01])  # fc10's wc: 13pct, 11pct
    lrn_batch_size: int = 128
    lrn_width: float = 1.0  # channel multiplier of the 64-64-32(11pct: 64)-32 layers
    lrn_crop: int = 24  # cifar-cropped, crop-border 4
    lrn_size: int = 9  # the 11pct net's cmrnorm layers: size, scale, pow
    lrn_scale: float = 0.001
    lrn_pow: float = 0.75
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = True  # speed only (memory layout of the convolutions)

    def __post_init__(self) -> None:
        if self.source != "tiny":
            _check(bool(self.path), "cifar.path", f"the path of the CIFAR-10 {self.source} copy when cifar.source is "
                   f"{self.source}", self.path)
        _check(self.tiny_train_per_class >= 1, "cifar.tiny_train_per_class", "a positive integer",
               self.tiny_train_per_class)
        _check(self.tiny_test_per_class >= 1, "cifar.tiny_test_per_class", "a positive integer", self.tiny_test_per_class)
        _check(0.0 < self.width <= 4.0, "cifar.width", "a number in (0, 4]", self.width)
        _check(self.epochs >= 1, "cifar.epochs", "a positive integer", self.epochs)
        _check(self.batch_size >= 1, "cifar.batch_size", "a positive integer", self.batch_size)
        _check(len(self.lr_grid) >= 1 and all(lr > 0 for lr in self.lr_grid)
               and list(self.lr_grid) == sorted(set(self.lr_grid)), "cifar.lr_grid",
               "a non-empty increasing list of positive learning rates", self.lr_grid)
        _check(self.lr_grid_extend >= 0, "cifar.lr_grid_extend", "an integer >= 0", self.lr_grid_extend)
        _check(len(self.figure1_rnorm) >= 1 and len(set(self.figure1_rnorm)) == len(self.figure1_rnorm),
               "cifar.figure1_rnorm", "a non-empty list of distinct booleans", self.figure1_rnorm)
        _check(self.figure1_protocol == "authors" or not any(self.figure1_rnorm), "cifar.figure1_rnorm",
               "[false] with figure1_protocol modern (the rnorm layers are the authors' protocol)", self.figure1_rnorm)
        _check(0 <= self.momentum < 1, "cifar.momentum", "a number in [0, 1)", self.momentum)
        _check(0 < self.target_error < 100, "cifar.target_error", "a percentage in (0, 100)", self.target_error)
        _check(self.input_scale > 0, "cifar.input_scale", "a positive number", self.input_scale)
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "cifar.seeds",
               "a non-empty list of distinct seeds", self.seeds)
        for s in self.seeds:
            _check_seed(s, "cifar.seeds")
        _check_seed(self.grid_seed, "cifar.grid_seed")
        _check(self.grid_seed not in self.seeds, "cifar.grid_seed", "a seed not in cifar.seeds (the lr is not chosen "
               "on an evaluation seed)", self.grid_seed)
        _check(len(set(self.lrn_seeds)) == len(self.lrn_seeds), "cifar.lrn_seeds", "a list of distinct seeds",
               self.lrn_seeds)
        for s in self.lrn_seeds:
            _check_seed(s, "cifar.lrn_seeds")
        _check(len(self.lrn_fc10_weight_decay) == 2 and all(w >= 0 for w in self.lrn_fc10_weight_decay),
               "cifar.lrn_fc10_weight_decay", "[13pct's, 11pct's], each >= 0", self.lrn_fc10_weight_decay)
        _check(len(self.lrn_epochs) == 3 and all(e >= 0 for e in self.lrn_epochs) and self.lrn_epochs[0] >= 1,
               "cifar.lrn_epochs", "[epochs at lrn_lr, at lrn_lr/10, at lrn_lr/100], the first at least 1",
               self.lrn_epochs)
        _check(self.lrn_lr > 0, "cifar.lrn_lr", "a positive number", self.lrn_lr)
        _check(0 <= self.lrn_momentum < 1, "cifar.lrn_momentum", "a number in [0, 1)", self.lrn_momentum)
        _check(self.lrn_weight_decay >= 0, "cifar.lrn_weight_decay", "a number >= 0", self.lrn_weight_decay)
        _check(self.lrn_batch_size >= 1, "cifar.lrn_batch_size", "a positive integer", self.lrn_batch_size)
        _check(0.0 < self.lrn_width <= 4.0, "cifar.lrn_width", "a number in (0, 4]", self.lrn_width)
        _check(8 <= self.lrn_crop <= 32, "cifar.lrn_crop", "a crop size in [8, 32]", self.lrn_crop)
        _check(self.lrn_size >= 1 and self.lrn_size % 2 == 1, "cifar.lrn_size", "an odd positive integer", self.lrn_size)
        _check(self.lrn_scale >= 0, "cifar.lrn_scale", "a number >= 0", self.lrn_scale)


@dataclass(frozen=True)
class ReportConfig:
    """The paper-style HTML and Markdown report."""

    title: str = "AlexNet reproduction"


@dataclass(frozen=True)
class NumericsConfig:
    """How CPU arithmetic runs (alexnet/runtime/backend.py): bit identity across CPUs, at a speed cost."""

    # The same bits on every x86-64 CPU with AVX2 (Intel or AMD, AVX2 or AVX-512); off: each
    # library's fastest kernels for the CPU it finds (identical reruns on the same CPU model only).
    bit_identity: bool = False
    threads: int = 2  # with bit_identity: the thread count of every library (results depend on it)

    def __post_init__(self) -> None:
        _check(1 <= self.threads <= 256, "numerics.threads", "an integer in [1, 256]", self.threads)


@dataclass(frozen=True)
class Params:
    """All of params.yaml. Cross-section checks live here."""

    data: DataConfig = field(default_factory=DataConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    cifar: CifarConfig = field(default_factory=CifarConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)

    def __post_init__(self) -> None:
        _check(self.model.input_size <= self.prepare.image_side, "model.input_size",
               f"a crop no larger than the prepared image (prepare.image_side = {self.prepare.image_side})",
               self.model.input_size)


def resolve_workers(requested: int) -> int:
    """A `workers` param: `requested`, or every core this process may run on when it is 0."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        # bool is an int: reject True where 1 is a choice.
        _check(value in choices and type(value) in {type(c) for c in choices}, key,
               "one of " + ", ".join(repr(c) for c in choices), value)
        return value
    if origin in (list, tuple):
        _check(isinstance(value, (list, tuple)), key, f"a list of {typing.get_args(tp)[0].__name__}", value)
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _check(isinstance(value, dict), key, "a mapping", value)
        key_tp, val_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, f"{key} key"): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported annotation for {key}: {tp}")
    if tp is bool:
        _check(isinstance(value, bool), key, "true or false", value)
    elif tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
    elif tp is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number", value)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        # inf and NaN pass every `>` check (NaN fails them all silently): refuse them once, here.
        _check(math.isfinite(number), key, "a finite number (not inf or NaN)", value)
        return number
    elif tp is str:
        _check(isinstance(value, str), key, "a string", value)
    else:
        raise TypeError(f"unsupported annotation for {key}: {tp}")
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    where = prefix or "params.yaml"
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), where, "a mapping of keys to values", raw)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        dotted = ", ".join(f"{prefix}.{k}" if prefix else str(k) for k in unknown)
        raise ConfigError(f"unknown key {dotted}; expected one of: " + ", ".join(names))
    kwargs = {}
    for name in names:
        if name not in raw:
            continue
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, raw[name], key)
        else:
            kwargs[name] = _coerce(raw[name], tp, key)
    return cls(**kwargs)


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, read the way DVC reads params.yaml (YAML 1.2, ruamel): `1e-2` is a
    float (PyYAML's YAML 1.1 resolver wants a dot, `1.0e-2`, and gives the string '1e-2'), and a
    key given twice in one mapping is an error, not a silent last-one-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{self.name}: duplicate key {key!r} (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}); dvc refuses this file too")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))
_ParamsLoader.add_constructor("tag:yaml.org,2002:map", _ParamsLoader.construct_mapping)


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed params mapping into `Params`."""
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ConfigError naming the first bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found")
    with path.open() as f:
        loader = _ParamsLoader(f)
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {str(e).replace(chr(10), ' ')}") from e
        finally:
            loader.dispose()
    if raw is None:  # dvc refuses an empty params file; a stage run by hand does too
        raise ConfigError(f"{path} is empty: expected the sections of params.yaml (data, prepare, train, ...)")
    return params_from_dict(raw)


def to_dict(params: Any) -> dict:
    """Plain-dict form of a config (for recording the resolved params beside results)."""
    return dataclasses.asdict(params)


def execution_params(cls: type, kind: dict[str, str] | None = None) -> tuple[str, ...]:
    """The fields of config dataclass `cls` marked SAME_BYTES or SAME_RECIPE (`kind`: only those)."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if "execution" in f.metadata and (kind is None or f.metadata == kind))
