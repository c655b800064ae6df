"""params.yaml -> typed config: defaults, and errors that name the key and what was expected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from alexnet.config import ConfigError, Params, load_params, params_from_dict, to_dict

ROOT = Path(__file__).resolve().parent.parent


def test_repo_params_load_and_cover_every_field():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    # every section and every key of params.yaml is a field, and round-trips unchanged
    d = to_dict(p)
    for section, values in raw.items():
        for key, value in values.items():
            assert d[section][key] == value, f"{section}.{key}"
    assert params_from_dict(d) == p


def test_defaults_are_the_papers():
    p = params_from_dict({})
    assert p == Params()
    assert (p.train.lr, p.train.momentum, p.train.weight_decay, p.train.batch_size) == (0.01, 0.9, 0.0005, 128)
    assert (p.model.lrn_size, p.model.lrn_alpha, p.model.lrn_beta, p.model.lrn_k) == (5, 1e-4, 0.75, 2.0)
    assert (p.prepare.image_side, p.model.input_size, p.model.dropout, p.augment.pca_std) == (256, 224, 0.5, 0.1)
    assert p.data.source == "tiny"


@pytest.mark.parametrize("raw,key,expected", [
    ({"trian": {}}, "trian", "expected one of"),
    ({"train": {"lrr": 0.1}}, "train.lrr", "expected one of"),
    ({"train": {"epochs": "ten"}}, "train.epochs", "an integer"),
    ({"train": {"epochs": True}}, "train.epochs", "an integer"),
    ({"train": {"epochs": 1.5}}, "train.epochs", "an integer"),
    ({"train": {"lr": -0.01}}, "train.lr", "a positive number"),
    ({"train": {"lr": 0}}, "train.lr", "a positive number"),
    ({"train": {"lr": "0.01"}}, "train.lr", "a number"),
    ({"train": {"seeds": ["a"]}}, "train.seeds[0]", "an integer"),
    ({"train": {"seeds": [1, 1]}}, "train.seeds", "distinct"),
    ({"train": {"seeds": 3}}, "train.seeds", "a list"),
    ({"train": 5}, "train", "a mapping"),
    ({"data": {"source": "imagenet"}}, "data.source", "'tiny'"),
    ({"data": {"source": "ilsvrc2012"}}, "data.root", "the folder holding your files"),
    ({"data": {"root": ""}}, "data.root", "a folder (data/user when"),
    ({"data": {"source": "url", "urls": {"a.tar": "ftp://x/a.tar"}}}, "data.urls.a.tar", "http"),
    ({"data": {"source": "url"}}, "data.urls", "a mapping"),
    ({"data": {"verify_md5": "yes"}}, "data.verify_md5", "true or false"),
    ({"model": {"input_size": 227}, "prepare": {"image_side": 200}}, "model.input_size", "no larger than"),
    ({"model": {"groups": True}}, "model.groups", "one of 1, 2"),
    ({"model": {"lrn_size": 4}}, "model.lrn_size", "odd"),
    ({"model": {"arch": "torchvision", "width": 0.5}}, "model.width", "1.0"),
    ({"tiny": {"classes": 101}}, "tiny.classes", "[2, 100]"),
    ({"tiny": {"min_side": 500}}, "tiny.min_side", "max_side"),
    ({"augment": {"pca_std": -1}}, "augment.pca_std", ">= 0"),
    ({"prepare": {"format": "png"}}, "prepare.format", "'npy', 'jpeg'"),
    ({"prepare": {"jpeg_quality": 0}}, "prepare.jpeg_quality", "[1, 100]"),
    ({"prepare": {"jpeg_quality": 101}}, "prepare.jpeg_quality", "[1, 100]"),
    ({"prepare": {"jpeg_quality": 90.0}}, "prepare.jpeg_quality", "an integer"),
    ({"train": {"compile": True, "compile_mode": "fast"}}, "train.compile_mode", "'default', 'reduce-overhead'"),
    ({"train": {"compile_mode": "reduce-overhead"}}, "train.compile_mode", "while train.compile is false"),
])
def test_bad_values_name_the_key(raw, key, expected):
    with pytest.raises(ConfigError) as err:
        params_from_dict(raw)
    msg = str(err.value)
    assert key in msg and expected in msg, msg


def test_prepare_format_checked_when_built_directly():
    """Benchmarks and tests build PrepareConfig without params.yaml: its own checks still apply."""
    from alexnet.config import PrepareConfig

    assert (PrepareConfig().format, PrepareConfig().jpeg_quality) == ("npy", 95)
    with pytest.raises(ConfigError, match="prepare.format: expected 'npy' or 'jpeg', got 'JPEG'"):
        PrepareConfig(format="JPEG")
    for bad in (0, 101, True, 95.0):
        with pytest.raises(ConfigError, match="prepare.jpeg_quality"):
            PrepareConfig(format="jpeg", jpeg_quality=bad)


def test_compile_mode_checked_when_built_directly():
    """Benchmarks build TrainConfig with dataclasses.replace: a mode is checked there too."""
    from alexnet.config import TrainConfig, without_cudagraphs

    assert TrainConfig(compile=True, compile_mode="max-autotune").compile_mode == "max-autotune"
    with pytest.raises(ConfigError, match="train.compile_mode: expected one of 'default', 'reduce-overhead', "
                                          "'max-autotune', 'max-autotune-no-cudagraphs', got 'max_autotune'"):
        TrainConfig(compile=True, compile_mode="max_autotune")
    with pytest.raises(ConfigError, match="train.compile_mode: expected 'default' while train.compile is false"):
        TrainConfig(compile_mode="max-autotune")
    assert [without_cudagraphs(m) for m in ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
            ] == ["default", "default", "max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs"]


def test_ints_widen_to_floats_but_not_the_reverse():
    p = params_from_dict({"train": {"lr": 1}})
    assert p.train.lr == 1.0 and isinstance(p.train.lr, float)


def test_load_params_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty.yaml is empty"):  # as dvc refuses it
        load_params(tmp_path / "empty.yaml")


def test_configs_are_frozen():
    p = Params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 0.1  # type: ignore[misc]


def test_paper_config_differs_from_params_only_on_marked_lines():
    """configs/ilsvrc2012.yaml is params.yaml with each TINY line set back to the paper's value."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    paper = yaml.safe_load((root / "configs" / "ilsvrc2012.yaml").read_text())
    tiny = yaml.safe_load((root / "params.yaml").read_text())
    load_params(root / "configs" / "ilsvrc2012.yaml")  # valid as it stands
    differ = {f"{s}.{k}" for s in tiny for k in tiny[s] if paper[s][k] != tiny[s][k]}
    # prepare.format is a storage choice, not a paper value: JPEG shards (~46 GB for ILSVRC-2012's
    # train set) fit a GPU machine's page cache, raw uint8 ones (252 GB) do not.
    assert differ == {"data.source", "data.root", "model.width", "model.init", "model.init_bias_one",
                      "model.input_scale", "train.batch_size", "train.epochs", "analyze.train_subset",
                      "prepare.format", "train.seeds", "train.chance_warn_steps", "cifar.source",
                      "cifar.path", "cifar.width", "cifar.epochs", "cifar.batch_size", "cifar.lr_grid",
                      "cifar.lr_grid_extend", "cifar.seeds", "cifar.lrn_seeds", "cifar.lrn_epochs",
                      "cifar.lrn_batch_size", "cifar.lrn_width", "numerics.bit_identity",
                      "train.deterministic", "train.amp", "train.channels_last", "train.compile"}
    assert (paper["prepare"]["format"], tiny["prepare"]["format"]) == ("jpeg", "npy")
    assert all(paper["model"][k] == v for k, v in
               {"init": "paper", "init_std": 0.01, "init_bias_one": True, "input_scale": 1.0}.items())
    assert paper["train"]["batch_size"] == 128
    assert paper["model"]["width"] == 1.0 and paper["train"]["epochs"] == 90
    assert paper["train"]["seeds"] == [0, 1, 2, 3, 4]  # Table 2's "5 CNNs"
    # every line that differs is marked in the paper config: PAPER:, or STORAGE: for prepare.format,
    # SPEED: for numerics.bit_identity and the GPU profile (how the arithmetic runs, not what it is),
    # PROTOCOL: for the CIFAR-10 choices the paper does not make (lr grid, seeds, epoch limit)
    lines = (root / "configs" / "ilsvrc2012.yaml").read_text().splitlines()
    for key in differ:
        section, name = key.split(".")
        start = lines.index(f"{section}:")
        line = next(ln for ln in lines[start + 1:] if ln.strip().startswith(f"{name}:"))
        assert any(mark in line for mark in ("PAPER:", "STORAGE:", "SPEED:", "PROTOCOL:")), line
        assert "PROTOCOL:" not in line or section == "cifar", line


def test_the_deterministic_paper_config_differs_only_in_the_gpu_profile():
    """configs/ilsvrc2012-deterministic.yaml is the paper config with its train section's SPEED lines
    set back to params.yaml's (the deterministic fp32 eager path), each marked DETERMINISTIC:; the
    paper config itself runs the fast path. Both are the paper's recipe."""
    import yaml

    from alexnet.fidelity import paper_deviations

    root = Path(__file__).resolve().parents[1]
    fast = yaml.safe_load((root / "configs" / "ilsvrc2012.yaml").read_text())
    det = yaml.safe_load((root / "configs" / "ilsvrc2012-deterministic.yaml").read_text())
    tiny = yaml.safe_load((root / "params.yaml").read_text())
    differ = {f"{s}.{k}" for s in fast for k in fast[s] if fast[s][k] != det[s][k]}
    assert differ == {"train.deterministic", "train.amp", "train.channels_last", "train.compile"}
    assert all(det["train"][k.split(".")[1]] == tiny["train"][k.split(".")[1]] for k in differ)
    assert (fast["train"]["amp"], fast["train"]["channels_last"], fast["train"]["compile"],
            fast["train"]["deterministic"]) == ("bf16", True, True, False)
    lines = (root / "configs" / "ilsvrc2012-deterministic.yaml").read_text().splitlines()
    start = lines.index("train:")
    for key in differ:
        line = next(ln for ln in lines[start + 1:] if ln.strip().startswith(key.split(".")[1] + ":"))
        assert "DETERMINISTIC:" in line, line
    for name in ("ilsvrc2012.yaml", "ilsvrc2012-deterministic.yaml"):
        assert paper_deviations(load_params(root / "configs" / name)) == []


def test_cifar10_configs_differ_from_params_only_on_marked_lines():
    """configs/cifar10.yaml (the authors' protocol) and cifar10-modern.yaml (the real-data runs)
    are params.yaml's cifar section with each TINY line set to the authors' value (REAL:), to what
    one session affords (SESSION:), to how rates and seeds are chosen (PROTOCOL:) or to the modern
    protocol's choice (MODERN:), each marked."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    tiny = yaml.safe_load((root / "params.yaml").read_text())
    params_lines = (root / "params.yaml").read_text().splitlines()
    start = params_lines.index("cifar:") + 1
    cifar_lines = params_lines[start:next(i for i in range(start, len(params_lines) + 1)
                                          if i == len(params_lines) or not params_lines[i].startswith(" "))]
    for name in ("cifar10.yaml", "cifar10-modern.yaml"):
        real = yaml.safe_load((root / "configs" / name).read_text())
        cfg = load_params(root / "configs" / name).cifar  # valid as it stands
        assert set(real) == {"cifar", "numerics"} and set(real["cifar"]) == set(tiny["cifar"])
        differ = {k for k in tiny["cifar"] if real["cifar"][k] != tiny["cifar"][k]}
        assert {ln.split(":")[0].strip() for ln in cifar_lines if "TINY:" in ln} <= differ  # each TINY line set back
        assert (cfg.width, cfg.batch_size, cfg.lrn_width, cfg.lrn_batch_size) == (1.0, 128, 1.0, 128)
        assert len(cfg.seeds) >= 5 and cfg.grid_seed not in cfg.seeds
        ratios = [b / a for a, b in zip(cfg.lr_grid, cfg.lr_grid[1:])]
        assert max(ratios) <= 2 ** 0.5 * 1.03  # "spaced at most sqrt(2) apart" (3 significant digits)
        lines = (root / "configs" / name).read_text().splitlines()
        for key in differ:
            line = next(ln for ln in lines if ln.strip().startswith(f"{key}:"))
            assert any(mark in line for mark in ("REAL:", "SESSION:", "MODERN:", "PROTOCOL:")), line
    assert load_params(root / "configs" / "cifar10.yaml").cifar.lrn_seeds == [0, 1, 2, 3]
    assert load_params(root / "configs" / "cifar10-modern.yaml").cifar.figure1_protocol == "modern"


