"""Tests for alexnet/evaluation/evaluate.py: top-k error, the ten-crop geometry, probability averaging,
ensembles, the torchvision path and the stage end to end on a hand-built store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from stage_helpers import assert_clear_error, run_stage

from alexnet.data.input import pixels
from alexnet.errors import PipelineError
from alexnet.evaluation import evaluate as ev
from alexnet.evaluation import metrics, predictions
from alexnet.evaluation.predictions import read_evaluation

# ---------------------------------------------------------------------------------------------
# averaging softmax outputs, not logits


class _KeyedNet(torch.nn.Module):
    """Logits [20, 0] for a patch whose top-left pixel (red) is bright, [0, 1] otherwise."""

    def forward(self, x):
        key = (x[:, 0, 0, 0] > 100).float()
        return torch.stack([20 * key, 1 - key], dim=1)


def test_ten_crop_averages_probabilities_not_logits():
    img = np.zeros((1, 8, 8, 3), np.uint8)
    img[0, 0, 0, 0] = 255  # only the unflipped top-left patch has it at its own top-left pixel
    out = ev.predict(_KeyedNet(), img, crop=5, mean=None)
    # by hand: one view p = softmax([20, 0]) ~ [1, 0]; nine views p = softmax([0, 1])
    p9 = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    p1 = np.exp([20.0, 0.0]) / np.exp([20.0, 0.0]).sum()
    np.testing.assert_allclose(out["ten_crop"][0].numpy(), (p1 + 9 * p9) / 10, rtol=1e-6)
    assert out["ten_crop"][0].argmax() == 1  # averaging logits ([2, 0.9]) would have said class 0
    np.testing.assert_allclose(out["center"][0].numpy(), p9, rtol=1e-6)
    assert metrics.topk_error(out["ten_crop"], np.array([1]), 1) == 0.0


def test_ensemble_averages_probabilities_and_ensemble_of_one_is_single(tmp_path):
    labels = np.array([1, 0])
    a = np.array([[0.99, 0.01], [0.6, 0.4]], np.float16)   # confident and wrong on image 0
    b = np.array([[0.40, 0.60], [0.7, 0.3]], np.float16)
    c = np.array([[0.45, 0.55], [0.8, 0.2]], np.float16)
    for tag, p in (("seed0", a), ("seed1", b), ("seed2", c)):
        for s in ev.SCHEMES:
            np.save(predictions.probs_path(tmp_path, tag, s), p)
    np.save(tmp_path / "labels.npy", labels)
    ens = predictions.average_probs([a, b, c])
    np.testing.assert_allclose(ens, (a.astype(np.float32) + b + c) / 3, rtol=1e-6)
    # probability mean of image 0: [0.613, 0.387] -> class 0 (wrong; a majority vote would say 1)
    assert predictions.metrics_from_probs([predictions.probs_path(tmp_path, t, "center") for t in ("seed0", "seed1", "seed2")],
                                 labels)["top1_error"] == 50.0
    m1 = predictions.ensemble_metrics(tmp_path, ["seed1"])
    assert m1["ensemble"] == m1["single"]
    assert m1["single"]["center"] == {"top1_error": 0.0, "top5_error": 0.0}  # b is right on both images
    m = predictions.ensemble_metrics(tmp_path, ["seed1", "seed2", "seed0"])
    assert m["single"]["ten_crop"]["top1_error"] == 0.0  # seed1 alone is right on both
    assert m["ensemble"]["ten_crop"]["top1_error"] == 50.0


def test_per_class_errors_and_best_scheme():
    classes = pd.DataFrame({"label": [0, 1, 2], "wnid": ["n0", "n1", "n2"], "name": ["a", "b", "c"]})
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
    labels = np.array([0, 0, 1])
    t = ev.per_class_errors(probs, labels, classes)
    assert list(t.columns) == ["label", "wnid", "name", "images", "top1_error", "top5_error"]
    assert t["images"].tolist() == [2, 1, 0]
    assert t["top1_error"].tolist()[:2] == [50.0, 0.0] and np.isnan(t["top1_error"][2])
    m = {k: {s: {"top1_error": 10.0, "top5_error": 5.0} for s in ev.SCHEMES} for k in ev.KINDS}
    assert ev.best_scheme(m) == ("ensemble", "ten_crop")
    m["single"]["center"] = {"top1_error": 9.0, "top5_error": 6.0}
    assert ev.best_scheme(m) == ("single", "center")


# ---------------------------------------------------------------------------------------------
# the stage on a hand-built store (layout of docs/architecture.md), and torchvision's weights

S = 256


def _write_store(root, images: np.ndarray, labels: np.ndarray, num_classes: int, split: str = "val",
                 train: tuple[np.ndarray, np.ndarray] | None = None):
    """A prepared store written by hand from the documented layout (not by alexnet.data.prepare): the
    evaluation split, and a training split when `train` gives its (images, labels)."""
    (root / "shards").mkdir(parents=True)
    splits = {split: (images, labels), **({"train": train} if train is not None else {})}
    index = []
    for name, (imgs, labs) in splits.items():
        np.save(root / "shards" / f"{name}-00000.npy", imgs)
        index.append(pd.DataFrame({"split": name, "shard": 0, "offset": range(len(labs)), "label": labs,
                                   "wnid": [f"n{i:08d}" for i in labs],
                                   "source": [f"{name}{i}.JPEG" for i in range(len(labs))]}))
    pd.DataFrame({"label": range(num_classes), "wnid": [f"n{i:08d}" for i in range(num_classes)],
                  "name": [f"class {i}" for i in range(num_classes)]}).to_csv(root / "classes.csv", index=False)
    pd.concat(index).to_csv(root / "index.csv", index=False)
    (root / "meta.json").write_text(json.dumps({"size": S, "source": "tiny", "eval_split": split,
                                                "splits": {n: len(v[1]) for n, v in splits.items()},
                                                "num_classes": num_classes}))


def _write_stats(root, mean_image: np.ndarray):
    from alexnet.data.stats import Stats, save_stats

    save_stats(Stats(mean_image=mean_image.astype(np.float64), channel_mean=mean_image.mean((0, 1)),
                     channel_std=np.ones(3), cov=np.eye(3), eigvals=np.ones(3), eigvecs=np.eye(3),
                     count=np.array(S * S, np.int64)), root)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _numpy_ten_crop(net, centred: np.ndarray, c: int) -> dict[str, np.ndarray]:
    """The paper's ten crops in numpy (corners, centre, mirrored) of mean-subtracted images
    [n, S, S, 3], through `net`, softmax in numpy: {"center", "ten_crop"} probabilities."""
    size = centred.shape[1]
    far, mid = size - c, (size - c) // 2
    patches = [centred[:, t:t + c, l:l + c] for t, l in [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]]
    patches += [p[:, :, ::-1] for p in patches]
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate(patches).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        probs = _softmax(net(x).numpy()).reshape(10, len(centred), -1)
    return {"center": probs[4], "ten_crop": probs.mean(axis=0)}


def _hand_errors(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 by argmax (no ties in these rows, checked), top-5 0 (3 classes): not alexnet.evaluation.metrics."""
    assert all(len(set(row.tolist())) == len(row) for row in probs)
    return {"top1_error": 100 * float(np.mean(probs.argmax(1) != labels)), "top5_error": 0.0}


def test_evaluate_stage_end_to_end(tmp_path):
    from alexnet.config import params_from_dict
    from alexnet.model.net import build_model, save_trained

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, S, S, 3), dtype=np.uint8)
    labels = np.array([0, 2, 0])
    train_images = rng.integers(0, 256, (7, S, S, 3), dtype=np.uint8)
    train_labels = np.array([0, 0, 1, 1, 2, 2, 2])
    _write_store(tmp_path / "prepared", images, labels, 3, train=(train_images, train_labels))
    mean = rng.uniform(60, 200, (S, S, 3))
    _write_stats(tmp_path / "stats", mean)
    params = params_from_dict({"model": {"width": 0.0625, "input_size": 227}, "train": {"seeds": [3, 1]},
                               "evaluate": {"batch_size": 3}})
    nets = {}
    for seed in (3, 1):
        torch.manual_seed(seed)
        nets[seed] = build_model(params.model, 3).eval()
        save_trained(tmp_path / "models" / f"seed{seed}" / "model.pt", nets[seed], params.model, 3, {"epochs": 7})
    m = ev.evaluate(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                    tmp_path / "metrics" / "evaluate.json", params, record_path=tmp_path / "records" / "evaluate.json",
                    descriptor_path=tmp_path / "evaluation.json")

    # Independently: numpy crops of (image - mean image), the torch net, numpy softmax and means.
    centred = images.astype(np.float32) - mean.astype(np.float32)
    want = {}
    for seed, net in nets.items():
        want[seed] = _numpy_ten_crop(net, centred, 227)
        for s in ev.SCHEMES:
            got = np.load(tmp_path / "eval" / f"probs-seed{seed}-{s}.npy")
            assert got.dtype == np.float16 and got.shape == (3, 3)
            np.testing.assert_allclose(got, want[seed][s], atol=2e-3)
    np.testing.assert_array_equal(np.load(tmp_path / "eval" / "labels.npy"), labels)

    flat = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    # The metrics file: the eight headline errors, then the first net's measures for the ablation
    # arms, numbers only, under stable flat keys in this order.
    assert list(flat) == ["top1_error", "top5_error", "ensemble_top1_error", "ensemble_top5_error",
                          "center_top1_error", "center_top5_error", "ensemble_center_top1_error",
                          "ensemble_center_top5_error", *predictions.RUN_MEASURES]
    # the first net (seed 3) on 3 training images (as many as val holds), rows 0, 3 and 6 (evenly spaced)
    train_centred = train_images[[0, 3, 6]].astype(np.float32) - mean.astype(np.float32)
    train_want = _numpy_ten_crop(nets[3], train_centred, 227)["center"]
    assert flat["train_center_top1_error"] == pytest.approx(
        _hand_errors(train_want, train_labels[[0, 3, 6]])["top1_error"], abs=1e-4)
    assert flat["conv1_colour_column1"] >= 0 and flat["conv1_colour_column2"] >= 0  # alexnet.evaluation.kernels' own tests
    assert all(type(v) is float for v in flat.values())
    described = json.loads((tmp_path / "evaluation.json").read_text())
    assert not {"single", "ensemble"} & set(described) and not any(k.endswith("_error") for k in described)
    # the run record: what varies (device, time, machine), none of what the results stage reads
    record = json.loads((tmp_path / "records" / "evaluate.json").read_text())
    assert record["device"] == "cpu" and record["seconds"] > 0 and not {"split", "images", "classes"} & set(record)
    saved = read_evaluation(tmp_path / "metrics" / "evaluate.json", tmp_path / "evaluation.json")
    assert saved == json.loads(json.dumps(m))  # what the stage returns is what it wrote, read back
    assert (saved["split"], saved["images"], saved["nets"]) == ("val", 3, 2)
    assert saved["members"] == ["seed3", "seed1"] and saved["epochs"] == [7, 7] and saved["input_size"] == 227
    assert saved["train_images_scored"] == 3
    for s in ev.SCHEMES:
        f16 = {k: want[k][s].astype(np.float16).astype(np.float32) for k in want}
        assert predictions.errors_of(saved, "single", s) == _hand_errors(f16[3], labels)  # single = the first seed
        assert predictions.errors_of(saved, "ensemble", s) == _hand_errors((f16[3] + f16[1]) / 2, labels)
        assert saved[predictions.metric_key("single", s, "top5_error")] == 0.0  # 3 classes: always in the top 5
    again = predictions.headline_metrics(predictions.ensemble_metrics(tmp_path / "eval", saved["members"]))
    assert again == {k: saved[k] for k in again}

    table = pd.read_csv(tmp_path / "eval" / "per_class.csv")
    assert list(table.columns) == ["label", "wnid", "name", "images", "top1_error", "top5_error"]
    assert table["images"].tolist() == [2, 0, 1]
    kind, scheme = saved["per_class_scheme"].split("/")
    best = want[3][scheme] if kind == "single" else (want[3][scheme] + want[1][scheme]) / 2
    pred = best.argmax(1)
    assert np.isnan(table["top1_error"][1])  # no images of class 1
    for label in (0, 2):
        assert table["top1_error"][label] == pytest.approx(100 * np.mean(pred[labels == label] != label))


def test_each_net_is_scored_and_recorded_at_its_own_input_size(tmp_path):
    """Nets of different input sizes: each is scored at its own crop, and the record says so
    (the first net's crop heads it: "single" is the first net)."""
    import dataclasses

    from alexnet.config import params_from_dict
    from alexnet.model.net import build_model, save_trained

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, S, S, 3), dtype=np.uint8)
    _write_store(tmp_path / "prepared", images, np.array([0, 2, 1]), 3)
    mean = rng.uniform(60, 200, (S, S, 3))
    _write_stats(tmp_path / "stats", mean)
    params = params_from_dict({"model": {"width": 0.0625, "input_size": 227}, "train": {"seeds": [3, 1]},
                               "evaluate": {"batch_size": 3}})
    nets = {}
    for seed, size in ((3, 227), (1, 224)):
        cfg = dataclasses.replace(params.model, input_size=size)
        torch.manual_seed(seed)
        nets[seed] = (build_model(cfg, 3).eval(), size)
        save_trained(tmp_path / "models" / f"seed{seed}" / "model.pt", nets[seed][0], cfg, 3, {"epochs": 1})
    saved = ev.evaluate(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                        tmp_path / "evaluate.json", params, record_path=tmp_path / "record.json")
    assert saved["input_size"] == 227 and saved["input_sizes"] == [227, 224]
    centred = images.astype(np.float32) - mean.astype(np.float32)
    for seed, (net, size) in nets.items():
        want = _numpy_ten_crop(net, centred, size)
        for s in ev.SCHEMES:
            np.testing.assert_allclose(np.load(tmp_path / "eval" / f"probs-seed{seed}-{s}.npy"), want[s], atol=2e-3)


def test_evaluate_stage_missing_model_is_a_clear_error(tmp_path):
    from alexnet.config import params_from_dict

    _write_store(tmp_path / "prepared", np.zeros((1, S, S, 3), np.uint8), np.array([0]), 2)
    _write_stats(tmp_path / "stats", np.zeros((S, S, 3)))
    with pytest.raises(PipelineError, match=r"seed0.*dvc repro train@0"):
        ev.evaluate(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                    tmp_path / "m.json", params_from_dict({}))
    assert not (tmp_path / "eval").exists() and not (tmp_path / "m.json").exists()


@pytest.fixture(scope="module")
def torchvision_case(tmp_path_factory):
    """A random torchvision AlexNet saved as a state_dict file, one 256x256 image, and the logits
    torchvision's own evaluation transforms and model give for it."""
    from PIL import Image

    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("tv") / "alexnet.pth"
    torch.save(net.state_dict(), path)
    image = np.random.default_rng(1).integers(0, 256, (1, S, S, 3), dtype=np.uint8)
    # torchvision's preset for these weights: Resize(256), CenterCrop(224), scale to [0, 1],
    # Normalize (built locally; nothing is downloaded)
    preset = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():
        logits = net(preset(Image.fromarray(image[0]))[None])
    return path, image, logits


def test_torchvision_weights_probabilities_equal_torchvision_reference(torchvision_case):
    from alexnet.model.net import load_torchvision_state_dict

    path, image, theirs = torchvision_case
    ours = ev.predict(load_torchvision_state_dict(path), image, pixels.TORCHVISION_CROP, None, "torchvision")
    torch.testing.assert_close(ours["center"], torch.softmax(theirs, dim=1), rtol=1e-4, atol=1e-6)


def test_evaluate_stage_with_torchvision_weights(tmp_path, torchvision_case, monkeypatch):
    import socket

    from alexnet.config import params_from_dict

    path, image, theirs = torchvision_case
    _write_store(tmp_path / "prepared", image, np.array([999]), 1000)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network access"))
    params = params_from_dict({"train": {"seeds": [0, 1]}})
    m = ev.evaluate(tmp_path / "prepared", tmp_path / "nostats", tmp_path / "nomodels", tmp_path / "eval",
                    tmp_path / "m.json", params, torchvision_weights=path)
    assert (m["model"], m["torchvision_weights"]) == ("torchvision", str(path))
    assert (m["nets"], m["members"]) == (1, ["torchvision"])
    assert m["input_size"] == 224 and m["mean"] == "torchvision"
    for s in ev.SCHEMES:
        assert predictions.errors_of(m, "ensemble", s) == predictions.errors_of(m, "single", s)
    center = np.load(tmp_path / "eval" / "probs-torchvision-center.npy")
    np.testing.assert_allclose(center, _softmax(theirs.numpy()), atol=1e-4)
    assert m["center_top1_error"] == (0.0 if theirs.argmax() == 999 else 100.0)
    assert np.load(tmp_path / "eval" / "probs-torchvision-ten_crop.npy").shape == (1, 1000)


def test_torchvision_weights_need_1000_classes(tmp_path, torchvision_case):
    from alexnet.config import params_from_dict

    _write_store(tmp_path / "prepared", np.zeros((1, S, S, 3), np.uint8), np.array([0]), 10)
    params = params_from_dict({})
    tv = {"torchvision_weights": torchvision_case[0]}
    with pytest.raises(PipelineError, match="1000"):
        ev.evaluate(tmp_path / "prepared", tmp_path / "s", tmp_path / "m", tmp_path / "eval", tmp_path / "m.json",
                    params, **tv)
    _write_store(tmp_path / "p2010", np.zeros((1, S, S, 3), np.uint8), np.array([0]), 1000, split="test")
    with pytest.raises(PipelineError, match="ILSVRC-2010"):
        ev.evaluate(tmp_path / "p2010", tmp_path / "s", tmp_path / "m", tmp_path / "eval", tmp_path / "m.json",
                    params, **tv)


def test_headline_keys_and_reading_one_error_back():
    from alexnet.evaluation.predictions import errors_of, headline_metrics, metric_key

    nested = {"single": {"center": {"top1_error": 1.0, "top5_error": 2.0},
                         "ten_crop": {"top1_error": 3.0, "top5_error": 4.0}},
              "ensemble": {"center": {"top1_error": 5.0, "top5_error": 6.0},
                           "ten_crop": {"top1_error": 7.0, "top5_error": 28.999999999999996}}}
    flat = headline_metrics(nested)
    assert flat == {"top1_error": 3.0, "top5_error": 4.0, "ensemble_top1_error": 7.0, "ensemble_top5_error": 29.0,
                    "center_top1_error": 1.0, "center_top5_error": 2.0, "ensemble_center_top1_error": 5.0,
                    "ensemble_center_top5_error": 6.0}
    for kind in ev.KINDS:
        for scheme in ev.SCHEMES:
            assert errors_of(flat, kind, scheme) == {k: round(v, 6) for k, v in nested[kind][scheme].items()}
    assert metric_key("ensemble", "center", "top1_error") == "ensemble_center_top1_error"
    assert errors_of({"top1_error": 1.0}) is None and errors_of(None) is None


def test_read_evaluation_names_a_missing_or_old_file(tmp_path):
    old = tmp_path / "evaluate.json"
    old.write_text(json.dumps({"split": "val", "single": {"center": {"top1_error": 1.0}}}))
    with pytest.raises(PipelineError, match="lacks 'top1_error'.*rerun"):
        read_evaluation(old)
    with pytest.raises(PipelineError, match="nothere.json not found"):
        read_evaluation(tmp_path / "nothere.json")


@pytest.mark.slow  # subprocesses that import torch
def test_torchvision_mode_of_the_stage_script(tmp_path, torchvision_case):
    path, image, _ = torchvision_case
    _write_store(tmp_path / "data" / "prepared", image, np.array([999]), 1000)
    (tmp_path / "params.yaml").write_text("train: {seeds: [0]}\n")
    common = ("--params", "params.yaml", "--prepared", "data/prepared")
    missing = run_stage("evaluate", *common, "--torchvision-weights", "no/such.pth", "--out", "tv",
                        "--metrics", "tv/metrics.json", cwd=tmp_path)
    assert_clear_error(missing, "no/such.pth not found")
    into_pipeline = run_stage("evaluate", *common, "--torchvision-weights", path, "--out", "tv",
                              "--metrics", "metrics/evaluate.json", cwd=tmp_path)
    assert_clear_error(into_pipeline, "--metrics metrics/evaluate.json", "metrics/")
    assert not (tmp_path / "metrics").exists()
    done = run_stage("evaluate", *common, "--torchvision-weights", path, "--out", "tv", "--metrics",
                     "tv/metrics.json", "--evaluation", "tv/evaluation.json", "--record", "tv/record.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "tv" / "evaluation.json").read_text())["members"] == ["torchvision"]
    assert set(json.loads((tmp_path / "tv" / "metrics.json").read_text())) >= {"top1_error", "top5_error"}
    no_models = run_stage("evaluate", *common, "--out", "e", "--metrics", "e.json", cwd=tmp_path)
    assert_clear_error(no_models, "--models and --stats")


def test_evaluate_refuses_a_net_for_another_store_or_mean(tmp_path):
    from alexnet.config import params_from_dict
    from alexnet.model.net import build_model, save_trained

    _write_store(tmp_path / "prepared", np.zeros((1, S, S, 3), np.uint8), np.array([0]), 3)
    _write_stats(tmp_path / "stats", np.zeros((S, S, 3)))
    params = params_from_dict({"model": {"width": 0.0625}})
    model_file = tmp_path / "models" / "seed0" / "model.pt"
    save_trained(model_file, build_model(params.model, 4), params.model, 4, {})
    with pytest.raises(PipelineError, match="predicts 4 classes, the store has 3"):
        ev.evaluate(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                    tmp_path / "m.json", params)
    save_trained(model_file, build_model(params.model, 3), params.model, 3,
                 {"params": {"augment": {"mean": "channel"}}})
    with pytest.raises(PipelineError, match="augment.mean 'channel'"):
        ev.evaluate(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                    tmp_path / "m.json", params)
    assert not (tmp_path / "eval").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_net_on_cuda_matches_cpu(tmp_path):
    from alexnet.config import ModelConfig
    from alexnet.data.store import PreparedStore
    from alexnet.model.net import build_model

    images = np.random.default_rng(3).integers(0, 256, (5, S, S, 3), dtype=np.uint8)
    _write_store(tmp_path / "prepared", images, np.array([0, 1, 2, 0, 1]), 3)
    split = PreparedStore(tmp_path / "prepared").split("val")
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.25), 3).eval()
    mean = images.mean(axis=0).astype(np.float32)
    cpu = ev.evaluate_net(net, split, 224, mean, "paper", 2, "cpu")
    gpu = ev.evaluate_net(net, split, 224, mean, "paper", 2, "cuda")
    for s in ev.SCHEMES:
        np.testing.assert_allclose(gpu[s], cpu[s], atol=1e-3)


@pytest.mark.slow  # a fresh interpreter importing torch: several seconds on a loaded 2-core machine
def test_stage_script_reports_a_missing_store_clearly(tmp_path):
    (tmp_path / "params.yaml").write_text("evaluate:\n  batch_size: 4\n")
    out = run_stage("evaluate", "--params", "params.yaml", "--prepared", "nothing", "--stats", "s", "--models", "m",
                    "--out", "e", "--metrics", "m.json", cwd=tmp_path)
    assert_clear_error(out, "prepared store nothing not found")
