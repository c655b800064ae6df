"""ILSVRC-2012/2010 readers and the download stage on hand-built releases: labels through meta.mat,
MD5 checks, missing and broken devkits, unsafe tar members, the 2010 test split and its quirks."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from sources_helpers import (
    COLOURS,
    INTERNAL,
    LEAVES,
    VAL_TRUTH,
    jpeg,
    make_ilsvrc2012,
    meta_mat,
    tar_bytes,
    train_members,
)

from alexnet.config import DataConfig, TinyConfig
from alexnet.data.sources import download_raw, ilsvrc, open_raw
from alexnet.data.sources.ilsvrc import ILSVRC2010, ILSVRC2012, ILSVRCDataset
from alexnet.errors import PipelineError
from alexnet.fileio import ChecksumError, UnsafeArchiveError, read_json

TINY = TinyConfig()


def _colour(data: bytes) -> tuple[int, ...]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((5, 5))


def _close(a, b) -> bool:
    return all(abs(x - y) < 12 for x, y in zip(a, b))


def test_val_labels_hand_worked(tmp_path):
    ds = ILSVRCDataset(ILSVRC2012, make_ilsvrc2012(tmp_path))
    assert [c.wnid for c in ds.classes] == ["n01000001", "n02000002", "n03000003"]
    assert [c.name for c in ds.classes] == ["first", "second", "third"]
    records = list(ds.iter_split("val"))
    # ids 3, 1, 2, 2, 1 -> n02000002, n03000003, n01000001, n01000001, n03000003 (meta.mat, not position)
    truth = {f"ILSVRC2012_val_{i:08d}.JPEG": w for i, w in
             enumerate(["n02000002", "n03000003", "n01000001", "n01000001", "n03000003"], start=1)}
    assert {r.source: r.wnid for r in records} == truth
    label_of = {w: i for i, w in enumerate(sorted(c.wnid for c in ds.classes))}  # labels: sorted wnids
    assert [label_of[w] for w in truth.values()] == [1, 2, 0, 0, 2]
    for r in records:  # each image was drawn in its class colour: bytes and label travel together
        assert _close(_colour(r.data), COLOURS[r.wnid])
    assert ds.count("val") == 5


def test_train_streams_nested_tars(tmp_path):
    ds = ILSVRCDataset(ILSVRC2012, make_ilsvrc2012(tmp_path))
    records = list(ds.iter_split("train"))
    assert [r.source for r in records] == [f"{leaf['wnid']}_{k}.JPEG"
                                           for leaf in LEAVES for k in range(leaf["n_train"])]
    assert all(_close(_colour(r.data), COLOURS[r.wnid]) for r in records)
    assert ds.count("train") == 6 == len(records)  # sum of the leaves' num_train_images
    with pytest.raises(ValueError, match="unknown split"):
        ds.count("test")


def test_download_verifies_published_md5(tmp_path):
    root = tmp_path / "imagenet"
    make_ilsvrc2012(root)
    out = tmp_path / "raw"
    with pytest.raises(ChecksumError, match="ILSVRC2012_img_train.tar"):
        download_raw(DataConfig(source="ilsvrc2012", root=str(root)), TINY, out, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [root]  # nothing half-written


def test_download_passes_when_md5_matches_and_records_names_in_place(tmp_path, monkeypatch):
    root = tmp_path / "imagenet"
    files = make_ilsvrc2012(root)
    real = {role: hashlib.md5(p.read_bytes()).hexdigest() for role, p in files.items()}
    monkeypatch.setitem(ilsvrc.LAYOUTS, "ilsvrc2012", dataclasses.replace(ILSVRC2012, md5=real))
    m = download_raw(DataConfig(source="ilsvrc2012", root=str(root)), TINY, tmp_path / "raw", progress=False)
    assert m["verified"] is True and m["md5"] == real
    assert m["files"] == {role: p.name for role, p in files.items()} and m["root"] == "data.root"
    assert m["where"]["val"]["path"] == str(files["val"].resolve())  # for the run record, not the manifest
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["manifest.json"]  # verified in place
    assert len(list(open_raw(tmp_path / "raw", root).iter_split("val"))) == 5
    with pytest.raises(PipelineError, match="data.root is empty"):
        open_raw(tmp_path / "raw")


def test_moving_the_files_leaves_the_manifest_byte_identical(tmp_path, monkeypatch):
    """What identifies the user's files is what is in them: the same tars at another path, touched
    later, give the same data/raw (so DVC reruns nothing after download); a replaced tar does not."""
    import os
    import shutil

    first, moved = tmp_path / "a" / "imagenet", tmp_path / "b" / "elsewhere"
    files = make_ilsvrc2012(first)
    real = {role: hashlib.md5(p.read_bytes()).hexdigest() for role, p in files.items()}
    monkeypatch.setitem(ilsvrc.LAYOUTS, "ilsvrc2012", dataclasses.replace(ILSVRC2012, md5=real))
    download_raw(DataConfig(source="ilsvrc2012", root=str(first)), TINY, tmp_path / "raw1", progress=False)
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    for p in moved.iterdir():
        os.utime(p, ns=(1, 1))
    download_raw(DataConfig(source="ilsvrc2012", root=str(moved)), TINY, tmp_path / "raw2", progress=False)
    assert (tmp_path / "raw1" / "manifest.json").read_bytes() == (tmp_path / "raw2" / "manifest.json").read_bytes()
    assert len(list(open_raw(tmp_path / "raw1", moved).iter_split("val"))) == 5  # found through data.root
    # data.root pointing at other files of the same names: refused, not read
    other = tmp_path / "other"
    shutil.copytree(moved, other)
    (other / files["val"].name).write_bytes(b"not the val tar")
    with pytest.raises(PipelineError, match="changed since the download stage"):
        open_raw(tmp_path / "raw1", other)


def test_verify_md5_false_skips_the_check(tmp_path):
    root = tmp_path / "imagenet"
    make_ilsvrc2012(root)
    m = download_raw(DataConfig(source="ilsvrc2012", root=str(root), verify_md5=False), TINY,
                     tmp_path / "raw", progress=False)
    assert m["verified"] is False and set(m["md5"].values()) == {None}
    m2 = read_json(tmp_path / "raw" / "manifest.json")
    assert m2 == {k: v for k, v in m.items() if k != "where"}  # where the files were: the run record's


def test_missing_devkit_is_named(tmp_path):
    root = tmp_path / "imagenet"
    make_ilsvrc2012(root)["devkit"].unlink()
    with pytest.raises(PipelineError, match="ILSVRC2012_devkit_t12.tar.gz"):
        download_raw(DataConfig(source="ilsvrc2012", root=str(root), verify_md5=False), TINY,
                     tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_devkit_without_meta_or_ground_truth(tmp_path):
    files = make_ilsvrc2012(tmp_path)
    files["devkit"].write_bytes(tar_bytes([("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
                                            b"1\n")], gz=True))
    with pytest.raises(PipelineError, match="data/meta.mat"):
        ILSVRCDataset(ILSVRC2012, files)
    files["devkit"].write_bytes(tar_bytes([("ILSVRC2012_devkit_t12/data/meta.mat",
                                            meta_mat(LEAVES, "ILSVRC2012_ID"))], gz=True))
    with pytest.raises(PipelineError, match="ILSVRC2012_validation_ground_truth.txt"):
        ILSVRCDataset(ILSVRC2012, files)


def test_damaged_meta_mat_and_ground_truth(tmp_path):
    files = make_ilsvrc2012(tmp_path)
    truth = ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", b"1\n")
    files["devkit"].write_bytes(tar_bytes([("ILSVRC2012_devkit_t12/data/meta.mat", b"not a mat file"), truth], gz=True))
    with pytest.raises(PipelineError, match="cannot read meta.mat"):
        ILSVRCDataset(ILSVRC2012, files)
    files["devkit"].write_bytes(tar_bytes([("ILSVRC2012_devkit_t12/data/meta.mat", meta_mat(LEAVES, "ILSVRC2012_ID")),
                                           (truth[0], b"1\nn01440764\n")], gz=True))
    with pytest.raises(PipelineError, match="one integer class id per line"):
        ILSVRCDataset(ILSVRC2012, files)


def test_ground_truth_naming_an_internal_synset_is_refused(tmp_path):
    files = make_ilsvrc2012(tmp_path, val_truth=[1, 4])  # 4 is the internal node
    with pytest.raises(PipelineError, match=r"\[4\]"):
        ILSVRCDataset(ILSVRC2012, files)


def test_meta_mat_of_the_wrong_year(tmp_path):
    files = make_ilsvrc2012(tmp_path)
    files["devkit"].write_bytes(tar_bytes([
        ("ILSVRC2012_devkit_t12/data/meta.mat", meta_mat(LEAVES, "ILSVRC2010_ID")),
        ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", b"1\n")], gz=True))
    with pytest.raises(PipelineError, match="ILSVRC2012_ID"):
        ILSVRCDataset(ILSVRC2012, files)


def test_unexpected_train_member(tmp_path):
    files = make_ilsvrc2012(tmp_path)
    files["train"].write_bytes(tar_bytes([("n09999999.tar", tar_bytes([("x.JPEG", jpeg((1, 2, 3)))]))]))
    with pytest.raises(PipelineError, match="n09999999.tar"):
        list(ILSVRCDataset(ILSVRC2012, files).iter_split("train"))


def _unsafe_tar(kind: str, name: str = "ILSVRC2012_val_00000001.JPEG") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo({"absolute": "/etc/" + name, "dotdot": "../" + name}.get(kind, name))
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "other"
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        data = jpeg((1, 2, 3)) if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind,message", [("absolute", "absolute path"), ("dotdot", r"'\.\.'"),
                                          ("symlink", "link"), ("hardlink", "link"),
                                          ("device", "device"), ("fifo", "fifo")])
def test_unsafe_members_are_refused_everywhere(tmp_path, kind, message):
    files = make_ilsvrc2012(tmp_path)
    files["val"].write_bytes(_unsafe_tar(kind))
    with pytest.raises(UnsafeArchiveError, match=message):
        list(ILSVRCDataset(ILSVRC2012, files).iter_split("val"))
    # inside a per-class tar nested in the training tar
    files["train"].write_bytes(tar_bytes([("n01000001.tar", _unsafe_tar(kind, "n01000001_1.JPEG"))]))
    with pytest.raises(UnsafeArchiveError, match=message):
        list(ILSVRCDataset(ILSVRC2012, files).iter_split("train"))
    # and in the devkit
    files["devkit"].write_bytes(gzip.compress(_unsafe_tar(kind, "ILSVRC2012_devkit_t12/data/meta.mat")))
    with pytest.raises(UnsafeArchiveError, match=message):
        ILSVRCDataset(ILSVRC2012, files)


def make_ilsvrc2010(root: Path, patch: bool = True) -> None:
    """A 2010-format release: devkit-1.0/, val/ and test/ prefixes, separate test ground truth."""
    root.mkdir(parents=True, exist_ok=True)
    wnid_of = {leaf["id"]: leaf["wnid"] for leaf in LEAVES}
    test_truth = [2, 2, 3, 1]
    (root / "ILSVRC2010_images_train.tar").write_bytes(tar_bytes(train_members()))
    (root / "ILSVRC2010_images_val.tar").write_bytes(tar_bytes(
        [(f"val/ILSVRC2010_val_{i:08d}.JPEG", jpeg(COLOURS[wnid_of[t]])) for i, t in enumerate(VAL_TRUTH, 1)]))
    test = [(f"test/ILSVRC2010_test_{i:08d}.JPEG", jpeg(COLOURS[wnid_of[t]])) for i, t in enumerate(test_truth, 1)]
    test[1] = (test[1][0], gzip.compress(test[1][1]))  # a gzip-wrapped JPEG, as some 2010 files are
    test[2] = (test[2][0], jpeg((128, 128, 128)))  # "image not available": replaced by the patch
    (root / "ILSVRC2010_images_test.tar").write_bytes(tar_bytes(test))
    (root / "ILSVRC2010_devkit-1.0.tar.gz").write_bytes(tar_bytes([
        ("devkit-1.0/data/meta.mat", meta_mat(LEAVES + INTERNAL, "ILSVRC2010_ID")),
        ("devkit-1.0/data/ILSVRC2010_validation_ground_truth.txt", "".join(f"{t}\n" for t in VAL_TRUTH).encode())],
        gz=True))
    (root / "ILSVRC2010_test_ground_truth.txt").write_text("".join(f"{t}\n" for t in test_truth))
    if patch:
        (root / "patch_images.tar").write_bytes(tar_bytes(
            [("patch_images/test/ILSVRC2010_test_00000003.JPEG", jpeg(COLOURS[wnid_of[3]]))]))


def test_ilsvrc2010_test_split_labels_gzip_and_patch(tmp_path):
    make_ilsvrc2010(tmp_path / "in")
    m = download_raw(DataConfig(source="ilsvrc2010", root=str(tmp_path / "in")), TINY, tmp_path / "raw",
                     progress=False)
    assert m["layout"] == "ilsvrc2010" and m["verified"] is False  # no published MD5s to check
    assert set(m["files"]) == {"train", "val", "test", "devkit", "test_ground_truth", "patch"}
    ds = open_raw(tmp_path / "raw", tmp_path / "in")
    assert ds.splits == ["train", "val", "test"] and ds.eval_split == "test"
    test = list(ds.iter_split("test"))
    assert [r.wnid for r in test] == ["n01000001", "n01000001", "n02000002", "n03000003"]
    for r in test:  # gzip unwrapped, patched image substituted: every image shows its class colour
        assert _close(_colour(r.data), COLOURS[r.wnid]), r.source
    assert ds.count("test") == 4 and ds.count("val") == 5 and ds.count("train") == 6
    assert {r.source: r.wnid for r in ds.iter_split("val")}["ILSVRC2010_val_00000001.JPEG"] == "n02000002"


def test_ilsvrc2010_missing_test_ground_truth(tmp_path):
    make_ilsvrc2010(tmp_path / "in", patch=False)
    (tmp_path / "in" / "ILSVRC2010_test_ground_truth.txt").unlink()
    with pytest.raises(PipelineError, match="ILSVRC2010_test_ground_truth.txt"):
        download_raw(DataConfig(source="ilsvrc2010", root=str(tmp_path / "in")), TINY, tmp_path / "raw",
                     progress=False)


def test_2010_layout_constants():
    assert ILSVRC2010.files["devkit"] == "ILSVRC2010_devkit-1.0.tar.gz" and ILSVRC2010.eval_split == "test"
    assert ILSVRC2012.md5 == {"train": "1d675b47d978889d74fa0da5fadfb00e", "val": "29b22e2961454d5413ddabcf34fc5622",
                              "devkit": "fa75699e90414af021442c21a62c3abf"}


def test_open_raw_without_manifest(tmp_path):
    with pytest.raises(PipelineError, match="manifest.json"):
        open_raw(tmp_path)
