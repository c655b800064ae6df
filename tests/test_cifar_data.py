"""CIFAR-10 as people have it: the python and binary archives and image folders read back, the
generated set, the stored arrays, and bad input (wrong MD5, truncated archive, missing batch,
unsafe members, hostile pickles, wrong shapes, a label of 10, odd counts), each one clear error."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from alexnet.claims.cifar import data as cifar_data
from alexnet.claims.cifar.data import BIN_FOLDER, FOLDER, LABEL_NAMES, MD5, write_archive
from alexnet.claims.cifar.data import read_python_archive as read_cifar
from alexnet.errors import PipelineError
from alexnet.fileio import UnsafeArchiveError
from tests.stage_helpers import assert_clear_error, run_stage


def official_style_archive(path, batches, test, extra_members=()):
    """A cifar-10-python.tar.gz written here by hand, independently of write_archive."""
    with tarfile.open(path, "w:gz") as tf:
        def add(name, obj):
            data = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072,
                             b"num_cases_per_batch": 1})
        for i, (data, labels) in enumerate(batches, start=1):
            add(f"data_batch_{i}", {b"data": data, b"labels": labels, b"batch_label": b"x", b"filenames": []})
        add("test_batch", {b"data": test[0], b"labels": test[1], b"batch_label": b"t", b"filenames": []})
        add("readme.html", b"<html></html>")
        for name, payload in extra_members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def red_image() -> np.ndarray:
    """One image whose red plane is 255, green 7, blue 0, in CIFAR's plane order [1, 3072]."""
    return np.concatenate([np.full(1024, 255), np.full(1024, 7), np.zeros(1024)]).astype(np.uint8)[None]


def test_reads_the_official_layout_plane_order_and_labels(tmp_path):
    batches = [(red_image(), [i % 10]) for i in range(5)]
    official_style_archive(tmp_path / "c.tar.gz", batches, (np.zeros((2, 3072), np.uint8), [9, 3]))
    d = read_cifar(tmp_path / "c.tar.gz")
    assert d.train_images.shape == (5, 32, 32, 3) and d.test_images.shape == (2, 32, 32, 3)
    assert (d.train_images[..., 0] == 255).all() and (d.train_images[..., 1] == 7).all()
    assert (d.train_images[..., 2] == 0).all()
    assert d.train_labels.tolist() == [0, 1, 2, 3, 4] and d.test_labels.tolist() == [9, 3]
    assert d.label_names[0] == "c0"


def test_generated_set_is_the_official_format_and_deterministic(tmp_path):
    write_archive(tmp_path / "a.tar.gz", 3, 2, seed=0)
    write_archive(tmp_path / "b.tar.gz", 3, 2, seed=0)
    write_archive(tmp_path / "c.tar.gz", 3, 2, seed=1)
    digest = [hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in ("a.tar.gz", "b.tar.gz", "c.tar.gz")]
    assert digest[0] == digest[1] != digest[2]
    with tarfile.open(tmp_path / "a.tar.gz") as tf:
        names = tf.getnames()
        # the plain pickle module, as a user of the official file would read it
        batch = pickle.load(tf.extractfile(f"{FOLDER}/data_batch_1"), encoding="bytes")
        meta = pickle.load(tf.extractfile(f"{FOLDER}/batches.meta"), encoding="bytes")
    assert set(names) == {FOLDER, *(f"{FOLDER}/{m}" for m in cifar_data.MEMBERS)}
    assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
    assert meta[b"label_names"][0] == b"airplane" and meta[b"num_vis"] == 3072
    d = read_cifar(tmp_path / "a.tar.gz")
    assert np.bincount(d.train_labels).tolist() == [3] * 10 and np.bincount(d.test_labels).tolist() == [2] * 10


def test_wrong_md5_is_one_clear_error(tmp_path):
    write_archive(tmp_path / "cifar-10-python.tar.gz", 2, 1, seed=0)
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: python\n  path: {tmp_path / 'cifar-10-python.tar.gz'}\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, "cifar-10-python.tar.gz", f"does not match the expected {MD5['python']}")
    assert not (tmp_path / "out").exists()


def test_matching_md5_passes(tmp_path, monkeypatch):
    from alexnet.config import CifarConfig

    write_archive(tmp_path / "c.tar.gz", 2, 1, seed=0)
    monkeypatch.setitem(MD5, "python", hashlib.md5((tmp_path / "c.tar.gz").read_bytes()).hexdigest())
    m = cifar_data.cifar_download(CifarConfig(source="python", path=str(tmp_path / "c.tar.gz"), allow_partial=True),
                                  tmp_path / "out")
    assert m["verified"] and m["official_pixels"] and "MD5 verified" in m["copy"]


def test_truncated_archive_is_one_clear_error(tmp_path):
    write_archive(tmp_path / "c.tar.gz", 5, 2, seed=0)
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineError, match="truncated or damaged archive"):
        read_cifar(tmp_path / "cut.tar.gz")
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: python\n  path: {tmp_path / 'cut.tar.gz'}\n  verify_md5: false\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, "cut.tar.gz", "truncated")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_not_gzip_and_missing_members(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"not an archive at all")
    with pytest.raises(PipelineError, match="truncated or damaged"):
        read_cifar(tmp_path / "x.tar.gz")
    with tarfile.open(tmp_path / "y.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo(f"{FOLDER}/batches.meta")
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(PipelineError, match="missing cifar-10-batches-py/data_batch_1"):
        read_cifar(tmp_path / "y.tar.gz")
    with pytest.raises(PipelineError, match="not found"):
        read_cifar(tmp_path / "none.tar.gz")


def test_unsafe_member_refused(tmp_path):
    batches = [(red_image(), [0]) for _ in range(5)]
    official_style_archive(tmp_path / "c.tar.gz", batches, (red_image(), [0]), extra_members=[("../evil", b"x")])
    with pytest.raises(UnsafeArchiveError, match="outside the archive"):
        read_cifar(tmp_path / "c.tar.gz")


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_naming_another_callable_is_refused(tmp_path):
    batches = [(red_image(), [0]) for _ in range(5)]
    official_style_archive(tmp_path / "c.tar.gz", batches, (red_image(), [0]))
    # rewrite test_batch as a hostile pickle
    with tarfile.open(tmp_path / "c.tar.gz") as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}
    members[f"{FOLDER}/test_batch"] = pickle.dumps({b"data": _Hostile()}, protocol=2)
    with tarfile.open(tmp_path / "h.tar.gz", "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(PipelineError, match="refused to load global posix.system|refused to load global os.system"):
        read_cifar(tmp_path / "h.tar.gz")


def test_bad_batch_contents(tmp_path):
    batches = [(red_image(), [0])] * 4 + [(np.zeros((1, 100), np.uint8), [0])]
    official_style_archive(tmp_path / "c.tar.gz", batches, (red_image(), [0]))
    with pytest.raises(PipelineError, match="data_batch_5: 'data' must be a uint8 array"):
        read_cifar(tmp_path / "c.tar.gz")
    batches = [(red_image(), [0])] * 4 + [(red_image(), [10])]
    official_style_archive(tmp_path / "d.tar.gz", batches, (red_image(), [0]))
    with pytest.raises(PipelineError, match="'labels' must be 1 integers in 0..9"):
        read_cifar(tmp_path / "d.tar.gz")


def test_download_stage_tiny_and_python_archive(tmp_path):
    from alexnet.config import CifarConfig

    m = cifar_data.cifar_download(CifarConfig(tiny_train_per_class=2, tiny_test_per_class=1), tmp_path / "raw")
    assert (m["source"], m["dataset"], m["train_images"], m["test_images"]) == ("tiny", "tiny", 20, 10)
    assert m["md5"] == hashlib.md5((tmp_path / "raw" / cifar_data.ARCHIVE).read_bytes()).hexdigest()
    data, manifest = cifar_data.open_cifar(tmp_path / "raw")
    assert data.train_images.shape == (20, 32, 32, 3) and manifest == m
    # a user's archive is read once and stored as arrays (verify off: it is not the official file)
    cfg = CifarConfig(source="python", path=str(tmp_path / "raw" / cifar_data.ARCHIVE), verify_md5=False,
                      allow_partial=True)
    m = cifar_data.cifar_download(cfg, tmp_path / "raw2")
    assert (m["source"], m["dataset"], m["verified"]) == ("python", "cifar10", False)
    assert "MD5 not checked" in m["copy"]
    again = cifar_data.open_cifar(tmp_path / "raw2")[0]
    assert np.array_equal(again.train_images, data.train_images) and np.array_equal(again.test_labels, data.test_labels)


# --- the official counts -------------------------------------------------------------------------

def test_official_sources_need_5000_and_1000_images_per_class(tmp_path):
    from alexnet.config import CifarConfig

    write_archive(tmp_path / "c.tar.gz", 2, 1, seed=0)
    cfg = CifarConfig(source="python", path=str(tmp_path / "c.tar.gz"), verify_md5=False)
    with pytest.raises(PipelineError, match=r"train has \[2, 2, 2, 2, 2, 2, 2, 2, 2, 2\] images per class, CIFAR-10 has 5000"):
        cifar_data.cifar_download(cfg, tmp_path / "out")
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: python\n  path: {tmp_path / 'c.tar.gz'}\n  verify_md5: false\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, "c.tar.gz", "cifar.allow_partial")


# --- the binary archive --------------------------------------------------------------------------

def binary_archive(path, batches, test, names=LABEL_NAMES, drop=()):
    """A cifar-10-binary.tar.gz written here by hand: records of a label byte and 3,072 pixel bytes."""
    def records(data, labels):
        return b"".join(bytes([label]) + row.tobytes() for row, label in zip(data, labels))

    files = {f"data_batch_{i}.bin": records(*b) for i, b in enumerate(batches, start=1)}
    files["test_batch.bin"] = records(*test)
    files["batches.meta.txt"] = ("\n".join(names) + "\n\n").encode()
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in files.items():
            if name in drop:
                continue
            info = tarfile.TarInfo(f"{BIN_FOLDER}/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def test_binary_archive_reads_the_same_pixels_as_the_python_one(tmp_path):
    batches = [(np.vstack([red_image(), np.arange(3072, dtype=np.uint8)[None]]), [i, 9 - i]) for i in range(5)]
    test = (red_image(), [7])
    binary_archive(tmp_path / "b.tar.gz", batches, test)
    official_style_archive(tmp_path / "p.tar.gz", batches, test)
    b, p = cifar_data.read_binary_archive(tmp_path / "b.tar.gz"), read_cifar(tmp_path / "p.tar.gz")
    assert b.train_images.shape == (10, 32, 32, 3)
    assert np.array_equal(b.train_images, p.train_images) and np.array_equal(b.test_images, p.test_images)
    assert b.train_labels.tolist() == p.train_labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert b.label_names == LABEL_NAMES
    # pixel (row 0, column 1) of the second image: plane order R, G, B, each row-major
    assert b.train_images[1, 0, 1].tolist() == [1, 1024 % 256 + 1, 2048 % 256 + 1]


def test_bad_binary_archives(tmp_path):
    good = [(red_image(), [0])] * 5
    binary_archive(tmp_path / "a.tar.gz", good, (red_image(), [10]))
    with pytest.raises(PipelineError, match="test_batch.bin: 'labels' must be 1 integers in 0..9"):
        cifar_data.read_binary_archive(tmp_path / "a.tar.gz")
    binary_archive(tmp_path / "b.tar.gz", good, (red_image(), [0]), drop=("data_batch_3.bin",))
    with pytest.raises(PipelineError, match="missing cifar-10-batches-bin/data_batch_3.bin"):
        cifar_data.read_binary_archive(tmp_path / "b.tar.gz")
    short = [(red_image(), [0])] * 4 + [(np.zeros((1, 3000), np.uint8), [0])]
    binary_archive(tmp_path / "c.tar.gz", short, (red_image(), [0]))
    with pytest.raises(PipelineError, match="data_batch_5.bin: 3001 bytes is not a whole number of 3073-byte records"):
        cifar_data.read_binary_archive(tmp_path / "c.tar.gz")
    binary_archive(tmp_path / "d.tar.gz", good, (red_image(), [0]), names=LABEL_NAMES[:9])
    with pytest.raises(PipelineError, match="batches.meta.txt: expected 10 class names"):
        cifar_data.read_binary_archive(tmp_path / "d.tar.gz")
    data = (tmp_path / "a.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineError, match="cut.tar.gz: .*truncated"):
        cifar_data.read_binary_archive(tmp_path / "cut.tar.gz")


def test_binary_stage_checks_its_own_md5(tmp_path):
    binary_archive(tmp_path / "b.tar.gz", [(red_image(), [0])] * 5, (red_image(), [0]))
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: binary\n  path: {tmp_path / 'b.tar.gz'}\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, "b.tar.gz", MD5["binary"])


# --- image folders -------------------------------------------------------------------------------

def image_folder(root, per_class=(2, 1), suffix=".png", size=(32, 32)):
    """<root>/{train,test}/<class>/*: each image a flat colour that encodes its class and index."""
    from PIL import Image

    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(LABEL_NAMES):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", size, (c * 20, i * 50, 200)).save(root / split / name / f"{i:04d}{suffix}")


def test_image_folder_reads_classes_in_cifar_order(tmp_path):
    image_folder(tmp_path / "png")
    data, ident = cifar_data.read_image_folder(tmp_path / "png")
    assert data.train_images.shape == (20, 32, 32, 3) and data.test_images.shape == (10, 32, 32, 3)
    assert data.train_labels.tolist() == [c for c in range(10) for _ in range(2)]
    # PNG is lossless: the pixels are exactly the colours written
    assert data.train_images[3, 5, 7].tolist() == [20, 50, 200] and data.test_images[9, 0, 0].tolist() == [180, 0, 200]
    assert ident["formats"] == [".png"] and len(ident["md5"]) == 32
    assert cifar_data.read_image_folder(tmp_path / "png")[1] == ident  # the copy's identity is stable
    (tmp_path / "png" / "test" / "cat" / "0000.png").unlink()
    image = np.zeros((32, 32, 3), np.uint8)
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "png" / "test" / "cat" / "0000.png")
    assert cifar_data.read_image_folder(tmp_path / "png")[1]["md5"] != ident["md5"]


def test_jpeg_folder_through_the_stage_says_it_is_a_copy(tmp_path):
    from alexnet.config import CifarConfig

    image_folder(tmp_path / "jpg", suffix=".jpg")
    cfg = CifarConfig(source="folder", path=str(tmp_path / "jpg"), allow_partial=True)
    m = cifar_data.cifar_download(cfg, tmp_path / "out")
    assert (m["source"], m["dataset"], m["official_pixels"], m["train_images"]) == ("folder", "cifar10", False, 20)
    assert "a JPEG copy, not the official pixels" in m["copy"]
    data, _ = cifar_data.open_cifar(tmp_path / "out")
    assert abs(int(data.train_images[3, 5, 7, 2]) - 200) <= 3  # lossy, but close


@pytest.mark.parametrize("damage, fragment", [
    ("missing_class", "missing cat"),
    ("extra_class", "unknown zebra"),
    ("wrong_size", "a CIFAR-10 image is 32x32, this one is 31x32"),
    ("not_an_image", "not a readable image"),
    ("no_test", "test not found"),
])
def test_bad_image_folders_are_one_line(tmp_path, damage, fragment):
    import shutil

    from PIL import Image

    root = tmp_path / "f"
    image_folder(root)
    if damage == "missing_class":
        shutil.rmtree(root / "test" / "cat")
    elif damage == "extra_class":
        (root / "train" / "zebra").mkdir()
    elif damage == "wrong_size":
        Image.new("RGB", (31, 32)).save(root / "train" / "dog" / "0001.png")
    elif damage == "not_an_image":
        (root / "train" / "dog" / "0001.png").write_bytes(b"\x89PNG but cut")
    elif damage == "no_test":
        shutil.rmtree(root / "test")
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: folder\n  path: {root}\n  allow_partial: true\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_store_checks_its_arrays(tmp_path):
    from alexnet.config import CifarConfig

    cifar_data.cifar_download(CifarConfig(tiny_train_per_class=1, tiny_test_per_class=1), tmp_path / "raw")
    np.save(tmp_path / "raw" / "test_labels.npy", np.full(10, 10, dtype=np.int64))
    with pytest.raises(PipelineError, match="test_labels.npy: 'labels' must be 10 integers in 0..9"):
        cifar_data.open_cifar(tmp_path / "raw")
    (tmp_path / "raw" / "train_images.npy").unlink()
    with pytest.raises(PipelineError, match="train_images.npy not found"):
        cifar_data.open_cifar(tmp_path / "raw")
