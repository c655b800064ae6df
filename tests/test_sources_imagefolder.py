"""Image folders: class folders, sorted labels, wnid names, clear errors for a wrong tree."""

from __future__ import annotations

import pytest
from sources_helpers import jpeg

from alexnet.config import DataConfig, TinyConfig
from alexnet.data.sources import download_raw, open_raw
from alexnet.data.sources.imagefolder import ImageFolderDataset
from alexnet.errors import PipelineError


def _tree(root, classes=("n02119789", "n01440764"), val=("n01440764",)):
    for split, names in (("train", classes), ("val", val)):
        for c in names:
            d = root / split / c
            d.mkdir(parents=True)
            for k in range(2):
                (d / f"{c}_{k}.JPEG").write_bytes(jpeg((k, 0, 0)))
            (d / "notes.txt").write_text("not an image")
            (d / ".hidden.jpg").write_bytes(b"x")
    return root


def test_classes_records_and_names(tmp_path):
    ds = ImageFolderDataset(_tree(tmp_path))
    assert [c.wnid for c in ds.classes] == ["n01440764", "n02119789"]
    assert [c.name for c in ds.classes] == ["tench", "kit fox"]  # from the embedded devkit words
    assert ds.eval_split == "val"
    train = list(ds.iter_split("train"))
    assert [(r.wnid, r.source) for r in train] == [("n01440764", "n01440764_0.JPEG"), ("n01440764", "n01440764_1.JPEG"),
                                                   ("n02119789", "n02119789_0.JPEG"), ("n02119789", "n02119789_1.JPEG")]
    assert train[0].data == (tmp_path / "train" / "n01440764" / "n01440764_0.JPEG").read_bytes()
    assert ds.count("train") == 4 and ds.count("val") == 2


def test_plain_folder_names(tmp_path):
    ds = ImageFolderDataset(_tree(tmp_path, classes=("dog", "cat"), val=("cat", "dog")))
    assert [(c.wnid, c.name) for c in ds.classes] == [("cat", "cat"), ("dog", "dog")]


def test_wrong_trees(tmp_path):
    with pytest.raises(PipelineError, match="no train/"):
        ImageFolderDataset(tmp_path)
    _tree(tmp_path / "a", val=("n09999999",))
    with pytest.raises(PipelineError, match="n09999999"):
        ImageFolderDataset(tmp_path / "a")


def test_download_stage_records_the_folder(tmp_path):
    root = _tree(tmp_path / "imgs")
    m = download_raw(DataConfig(source="imagefolder", root=str(root)), TinyConfig(), tmp_path / "raw", progress=False)
    content, where, skipped = m.pop("content"), m.pop("where"), m.pop("skipped")
    assert m == {"source": "imagefolder", "layout": "imagefolder", "files": {"root": "."}, "root": "data.root",
                 "md5": {"root": None}, "verified": False}
    assert content["root"]["files"] == 12 and "path" not in content["root"]  # 6 images + 6 skipped; no path
    assert where["root"]["path"] == str(root.resolve())  # the run record's
    assert skipped == {"dangling_links": 0, "unknown_extension": 3, "hidden": 3, "not_a_file": 0}
    assert len(list(open_raw(tmp_path / "raw", root).iter_split("val"))) == 2
