"""The CIFAR-10 archive: the official format read back, the generated set, and bad archives
(wrong MD5, truncated, unsafe members, hostile pickles), each one clear error."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from alexnet import cifar_data
from alexnet.cifar_data import FOLDER, MD5, read_cifar, write_archive
from alexnet.errors import PipelineError
from alexnet.fileio import ChecksumError, UnsafeArchiveError
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
    with pytest.raises(ChecksumError, match=f"MD5 .* does not match the expected {MD5}"):
        read_cifar(tmp_path / "cifar-10-python.tar.gz", MD5)
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: file\n  archive: {tmp_path / 'cifar-10-python.tar.gz'}\n")
    result = run_stage("cifar_download", "--params", params, "--out", tmp_path / "out", cwd=tmp_path)
    assert_clear_error(result, "cifar-10-python.tar.gz", "MD5")


def test_matching_md5_passes(tmp_path, monkeypatch):
    write_archive(tmp_path / "c.tar.gz", 2, 1, seed=0)
    md5 = hashlib.md5((tmp_path / "c.tar.gz").read_bytes()).hexdigest()
    assert read_cifar(tmp_path / "c.tar.gz", md5).train_labels.size == 20


def test_truncated_archive_is_one_clear_error(tmp_path):
    write_archive(tmp_path / "c.tar.gz", 5, 2, seed=0)
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineError, match="truncated or damaged archive"):
        read_cifar(tmp_path / "cut.tar.gz")
    params = tmp_path / "params.yaml"
    params.write_text(f"cifar:\n  source: file\n  archive: {tmp_path / 'cut.tar.gz'}\n  verify_md5: false\n")
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


def test_download_stage_tiny_and_file(tmp_path):
    from alexnet.config import CifarConfig

    m = cifar_data.cifar_download(CifarConfig(tiny_train_per_class=2, tiny_test_per_class=1), tmp_path / "raw")
    assert (m["source"], m["train_images"], m["test_images"], m["verified"]) == ("tiny", 20, 10, True)
    assert m["md5"] == hashlib.md5((tmp_path / "raw" / cifar_data.ARCHIVE).read_bytes()).hexdigest()
    data, manifest = cifar_data.open_cifar(tmp_path / "raw")
    assert data.train_images.shape == (20, 32, 32, 3)
    # a user's file is verified in place and not copied (verify off: it is not the official file)
    m = cifar_data.cifar_download(CifarConfig(source="file", archive=str(tmp_path / "raw" / cifar_data.ARCHIVE),
                                              verify_md5=False), tmp_path / "raw2")
    assert m["source"] == "file" and not (tmp_path / "raw2" / cifar_data.ARCHIVE).exists()
    assert cifar_data.open_cifar(tmp_path / "raw2")[0].test_labels.size == 10
