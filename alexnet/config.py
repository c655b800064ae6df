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
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A param is unknown, of the wrong type, or has an impossible value."""


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where the raw dataset comes from (stage `download`)."""

    # tiny: generated ILSVRC-2012-format dataset; ilsvrc2012 / ilsvrc2010: the official files in
    # `root`; imagefolder: `root`/train and `root`/val class folders; url: the official
    # ILSVRC-2012 (or -2010, see url_layout) files downloaded from `urls` (your own mirror).
    source: Literal["tiny", "ilsvrc2012", "ilsvrc2010", "imagefolder", "url"] = "tiny"
    root: str = ""
    verify_md5: bool = True  # false only for re-packed copies whose MD5s differ from the published
    urls: dict[str, str] = field(default_factory=dict)  # file name -> http(s)/file URL
    url_layout: Literal["ilsvrc2012", "ilsvrc2010"] = "ilsvrc2012"

    def __post_init__(self) -> None:
        if self.source in ("ilsvrc2012", "ilsvrc2010", "imagefolder"):
            _check(bool(self.root), "data.root", f"a folder path when data.source is {self.source}", self.root)
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


@dataclass(frozen=True)
class PrepareConfig:
    """Resize to the shorter side `size`, centre-crop size x size (paper, Section 2)."""

    size: int = 256
    shard_size: int = 1024  # images per shard file
    workers: int = 0  # 0 = all cores
    draft: bool = True  # let Pillow decode JPEGs already downscaled in the DCT domain
    # npy: raw uint8 shards read through memory maps (196 kB per 256x256 image); jpeg: each image
    # stored as a 4:4:4 JPEG of jpeg_quality (~36 kB, 41.9 dB PSNR at 95 on photos), decoded by
    # the loader, on the GPU with CUDA (benchmarks/bench_jpeg.py measures the choice).
    format: Literal["npy", "jpeg"] = "npy"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        _check(self.size >= 32, "prepare.size", "an integer >= 32", self.size)
        _check(self.shard_size >= 1, "prepare.shard_size", "a positive integer", self.shard_size)
        _check(self.workers >= 0, "prepare.workers", "an integer >= 0 (0 = all cores)", self.workers)
        # Checked here too (not only when read from YAML): benchmarks and tests build it directly.
        _check(self.format in ("npy", "jpeg"), "prepare.format", "'npy' or 'jpeg'", self.format)
        _check(isinstance(self.jpeg_quality, int) and not isinstance(self.jpeg_quality, bool)
               and 1 <= self.jpeg_quality <= 100, "prepare.jpeg_quality", "an integer in [1, 100]", self.jpeg_quality)


@dataclass(frozen=True)
class StatsConfig:
    """Mean image and RGB PCA over the training set (paper, Sections 2 and 4.1)."""

    workers: int = 0  # 0 = all cores

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
    overlapping_pool: bool = True  # 3x3 stride 2 (paper) or 2x2 stride 2
    dropout: float = 0.5
    conv6: bool = False  # the sixth conv layer of the paper's pre-trained (starred) models
    # paper: every layer N(0, init_std); he: fc8 N(0, init_std), every other layer
    # N(0, sqrt(2 / fan_in)) (see AlexNet.init_weights for why the tiny run needs it).
    init: Literal["paper", "he"] = "paper"
    init_std: float = 0.01
    init_bias_one: bool = True  # biases 1 in conv2, conv4, conv5, fc6, fc7
    # The net's input (raw 0-255 pixels minus the mean, as the paper) is multiplied by this
    # constant before conv1. 1.0 is the paper. With raw pixels (std ~60) conv1's weight gradient
    # is ~60x larger relative to its weights than with unit-scale input, which makes He-scaled
    # init diverge at any usable lr; 1/64 makes the input unit-scale.
    input_scale: float = 1.0

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


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (paper, Section 4.1); each switchable for ablations."""

    random_crop: bool = True  # random input_size crops of the prepared image, else the centre crop
    flip: bool = True
    pca_lighting: bool = True
    pca_std: float = 0.1  # alpha_i ~ N(0, pca_std)
    # What multiplies alpha_i along principal component i. The paper writes alpha_i * lambda_i,
    # which only makes sense on some pixel scale: with 0-255 pixels lambda_1 is ~4000 (a
    # variance), so alpha_1 * lambda_1 shifts every pixel by hundreds of levels and wipes the
    # image out. sqrt_eigval (default) uses the component's standard deviation sqrt(lambda_i),
    # in pixel units on any scale (~7 levels on ImageNet-like data), as fb.resnet.torch's
    # ImageNet constants (0.2175 = sqrt(lambda_1) on a 0-1 scale) and most reimplementations do.
    # eigval is the formula taken literally in 0-255 units, kept for the ablation.
    pca_magnitude: Literal["sqrt_eigval", "eigval"] = "sqrt_eigval"
    mean: Literal["image", "channel", "none"] = "image"  # what is subtracted: the paper's mean image

    def __post_init__(self) -> None:
        _check(self.pca_std >= 0, "augment.pca_std", "a number >= 0", self.pca_std)


@dataclass(frozen=True)
class TrainConfig:
    """SGD and its schedule (paper, Section 5), devices and determinism."""

    seeds: list[int] = field(default_factory=lambda: [0])  # one net per seed: the ensemble
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    # paper: v <- m v - wd lr w - lr g (lr inside v); pytorch: torch.optim.SGD (lr outside v)
    update_rule: Literal["paper", "pytorch"] = "paper"
    schedule: Literal["plateau", "step"] = "plateau"
    lr_factor: float = 0.1
    plateau_patience: int = 2  # epochs without improvement of validation top-1 error before a drop
    plateau_threshold: float = 0.001  # absolute improvement of the error that counts
    max_lr_drops: int = 3
    step_epochs: list[int] = field(default_factory=lambda: [30, 60, 80])
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    amp: Literal["none", "bf16"] = "none"
    channels_last: bool = False
    compile: bool = False
    loader_workers: int = 0  # 0 = chosen from the machine
    max_loss: float = 100.0  # a loss above this (or NaN) stops the run

    def __post_init__(self) -> None:
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "train.seeds",
               "a non-empty list of distinct integers", self.seeds)
        _check(self.epochs >= 1, "train.epochs", "a positive integer", self.epochs)
        _check(self.batch_size >= 1, "train.batch_size", "a positive integer", self.batch_size)
        _check(self.lr > 0, "train.lr", "a positive number", self.lr)
        _check(0 <= self.momentum < 1, "train.momentum", "a number in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "train.weight_decay", "a number >= 0", self.weight_decay)
        _check(0 < self.lr_factor < 1, "train.lr_factor", "a number in (0, 1)", self.lr_factor)
        _check(self.plateau_patience >= 1, "train.plateau_patience", "a positive integer", self.plateau_patience)
        _check(self.plateau_threshold >= 0, "train.plateau_threshold", "a number >= 0", self.plateau_threshold)
        _check(self.max_lr_drops >= 0, "train.max_lr_drops", "an integer >= 0", self.max_lr_drops)
        _check(list(self.step_epochs) == sorted(self.step_epochs) and all(e >= 1 for e in self.step_epochs),
               "train.step_epochs", "an increasing list of positive epochs", self.step_epochs)
        _check(self.loader_workers >= 0, "train.loader_workers", "an integer >= 0", self.loader_workers)
        _check(self.max_loss > 0, "train.max_loss", "a positive number", self.max_loss)


@dataclass(frozen=True)
class EvaluateConfig:
    """Multi-crop testing (paper, Section 4.1) on the evaluation split."""

    batch_size: int = 128  # images per batch (ten-crop runs 10x as many patches)

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


@dataclass(frozen=True)
class ReportConfig:
    """The paper-style HTML and Markdown report."""

    title: str = "AlexNet reproduction"


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

    def __post_init__(self) -> None:
        _check(self.model.input_size <= self.prepare.size, "model.input_size",
               f"a crop no larger than the prepared image (prepare.size = {self.prepare.size})",
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
        return float(value)
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


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed params mapping into `Params`."""
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ConfigError naming the first bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found")
    with path.open() as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from e
    return params_from_dict(raw)


def to_dict(params: Any) -> dict:
    """Plain-dict form of a config (for recording the resolved params beside results)."""
    return dataclasses.asdict(params)
