"""Readers for the official ILSVRC-2012 and ILSVRC-2010 releases, streamed from their tars.

Owns the official file names and published MD5s, devkit parsing (meta.mat and the ground-truth
files) and record streaming. Nothing is extracted: the training tar (a tar of one tar per class)
is read front to back and each inner tar is read from the outer stream, so 1.28M images flow
through memory one at a time. Every member of every tar goes through
`alexnet.fileio.check_member` first.

Labels: the devkit numbers its classes (ILSVRC2012_ID / ILSVRC2010_ID, 1..1000) in its own
order, which is not sorted WordNet-id order. Ground truth is given as those ids; we map each id
to its WordNet id through meta.mat's leaf synsets (num_children == 0) and the WordNet id to the
label (position among the sorted wnids). Never by position.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io

from alexnet.data.sources.base import WNID_RE, ClassInfo, RawDataset, RawRecord
from alexnet.data.sources.synsets import short_name
from alexnet.errors import PipelineError
from alexnet.fileio import checked_members, iter_tar_files, open_tar


@dataclass(frozen=True)
class Layout:
    """An official release: file name per role, published MD5 per role (None: none published)."""

    name: str
    year: int
    files: dict[str, str]
    md5: dict[str, str | None]
    splits: tuple[str, ...]
    eval_split: str
    devkit_meta: str  # path of meta.mat inside the devkit archive, below its top folder
    devkit_val_truth: str
    optional: dict[str, str] = dataclasses.field(default_factory=dict)  # roles used when present


ILSVRC2012 = Layout(
    name="ilsvrc2012",
    year=2012,
    files={"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar",
           "devkit": "ILSVRC2012_devkit_t12.tar.gz"},
    # Published on image-net.org with the 2012 release (and checked by torchvision's ImageNet).
    md5={"train": "1d675b47d978889d74fa0da5fadfb00e", "val": "29b22e2961454d5413ddabcf34fc5622",
         "devkit": "fa75699e90414af021442c21a62c3abf"},
    splits=("train", "val"),
    eval_split="val",  # ILSVRC-2012 test labels were never published (paper, Section 6)
    devkit_meta="data/meta.mat",
    devkit_val_truth="data/ILSVRC2012_validation_ground_truth.txt",
)

# The 2010 release as the ILSVRC-2010 page distributed it: three image tars, the devkit (its top
# folder is devkit-1.0/, holding data/meta.mat with ILSVRC2010_ID and
# data/ILSVRC2010_validation_ground_truth.txt) and, released after the challenge, the test ground
# truth as a separate text file. The paper's Table 1 is on this test set. Layout as read by Fuel's
# ILSVRC-2010 converter (mila-iqia/fuel), which we follow for two quirks we could not check on the
# files themselves: a few images are stored gzip-compressed inside the tars, and an optional
# patch_images.tar (<...>/<train|val|test>/<file>.JPEG) replaces images that are blank or show an
# "image not available" banner. No MD5s were published with this release that we could confirm,
# so none are checked: manifest.json says "md5": null and "verified": false for these files.
ILSVRC2010 = Layout(
    name="ilsvrc2010",
    year=2010,
    files={"train": "ILSVRC2010_images_train.tar", "val": "ILSVRC2010_images_val.tar",
           "test": "ILSVRC2010_images_test.tar", "devkit": "ILSVRC2010_devkit-1.0.tar.gz",
           "test_ground_truth": "ILSVRC2010_test_ground_truth.txt"},
    md5={"train": None, "val": None, "test": None, "devkit": None, "test_ground_truth": None},
    splits=("train", "val", "test"),
    eval_split="test",
    devkit_meta="data/meta.mat",
    devkit_val_truth="data/ILSVRC2010_validation_ground_truth.txt",
    optional={"patch": "patch_images.tar"},
)

LAYOUTS = {layout.name: layout for layout in (ILSVRC2012, ILSVRC2010)}


@dataclass(frozen=True)
class Devkit:
    """What the devkit says: leaf classes, their ILSVRC ids and training counts, val ground truth."""

    wnid_of_id: dict[int, str]
    words: dict[str, str]
    num_train_images: dict[str, int]
    val_truth: list[int]  # ILSVRC id of val image i+1


def read_meta_mat(data: bytes, id_field: str, label: str) -> tuple[dict[int, str], dict[str, str], dict[str, int]]:
    """Parse meta.mat's `synsets`: (ILSVRC id -> wnid, wnid -> words, wnid -> num_train_images) of its leaves."""
    try:
        synsets = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
    except Exception as e:  # scipy raises several types for a damaged file
        raise PipelineError(f"{label}: cannot read meta.mat: {e}") from e
    synsets = np.atleast_1d(synsets)
    fields = synsets.dtype.names or ()
    for need in (id_field, "WNID", "words", "num_children"):
        if need not in fields:
            raise PipelineError(f"{label}: meta.mat synsets have no field {need!r} (fields: {', '.join(fields)})")
    wnid_of_id: dict[int, str] = {}
    words: dict[str, str] = {}
    counts: dict[str, int] = {}
    for s in synsets:
        if int(s["num_children"]) != 0:
            continue  # an internal WordNet node, not one of the classes
        sid, wnid = int(s[id_field]), str(s["WNID"])
        if not WNID_RE.match(wnid):
            raise PipelineError(f"{label}: meta.mat leaf {sid} has a malformed WNID {wnid!r}")
        if sid in wnid_of_id or wnid in words:
            raise PipelineError(f"{label}: meta.mat lists {id_field} {sid} / {wnid} twice")
        wnid_of_id[sid] = wnid
        words[wnid] = str(s["words"])
        counts[wnid] = int(s["num_train_images"]) if "num_train_images" in fields else 0
    if not wnid_of_id:
        raise PipelineError(f"{label}: meta.mat has no leaf synsets (num_children == 0)")
    return wnid_of_id, words, counts


def parse_ground_truth(text: str, label: str) -> list[int]:
    """One ILSVRC id per line (line i = image i)."""
    try:
        return [int(line) for line in text.split()]
    except ValueError as e:
        raise PipelineError(f"{label}: ground truth must hold one integer class id per line ({e})") from e


def _devkit_member(name: str, wanted: str) -> bool:
    # The devkit wraps everything in one top folder (ILSVRC2012_devkit_t12/; devkit-1.0/ for 2010).
    parts = PurePosixPath(name).parts
    return "/".join(parts[1:]) == wanted or name == wanted


def read_devkit(path: Path, layout: Layout) -> Devkit:
    """Stream the devkit archive for meta.mat and the validation ground truth."""
    found: dict[str, bytes] = {}
    for name, data in iter_tar_files(path):
        for want in (layout.devkit_meta, layout.devkit_val_truth):
            if _devkit_member(name, want):
                found[want] = data
    for want in (layout.devkit_meta, layout.devkit_val_truth):
        if want not in found:
            raise PipelineError(f"{path}: the devkit has no {want} (is this the {layout.name} devkit?)")
    id_field = f"ILSVRC{layout.year}_ID"
    wnid_of_id, words, counts = read_meta_mat(found[layout.devkit_meta], id_field, f"{path}:{layout.devkit_meta}")
    truth = parse_ground_truth(found[layout.devkit_val_truth].decode(), f"{path}:{layout.devkit_val_truth}")
    unknown = sorted(set(truth) - set(wnid_of_id))
    if unknown:
        raise PipelineError(f"{path}: validation ground truth names class ids {unknown[:5]} that meta.mat "
                            "does not list as leaf synsets")
    return Devkit(wnid_of_id, words, counts, truth)


GZIP_MAGIC = b"\x1f\x8b"


def _payload(data: bytes) -> bytes:
    """An image's bytes; a gzip-wrapped one (some ILSVRC-2010 files) is unwrapped."""
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError):
            return data  # left for prepare to quarantine, with the decoder's reason
    return data


def read_patches(path: Path) -> dict[tuple[str, str], bytes]:
    """ILSVRC-2010's patch_images.tar: {(split, file name): replacement bytes}."""
    patches: dict[tuple[str, str], bytes] = {}
    for name, data in iter_tar_files(path):
        parts = PurePosixPath(name).parts
        if len(parts) >= 2 and parts[-2] in ("train", "val", "test"):
            patches[(parts[-2], parts[-1])] = data
    return patches


def _class_of_member(path: Path, member: tarfile.TarInfo, known: set[str]) -> str:
    inner_name = PurePosixPath(member.name).name
    wnid = inner_name.removesuffix(".tar")
    if not inner_name.endswith(".tar") or wnid not in known:
        raise PipelineError(f"{path}: unexpected member {member.name!r}; the training tar must hold "
                            "one <wnid>.tar per class of the devkit")
    return wnid


def list_train_tar(path: Path, known: set[str]) -> list[tuple[str, str]]:
    """(image name, wnid) of every image of a tar of per-class tars, from the headers only (cheap:
    the data is seeked over, so 147 GB are listed in seconds to minutes)."""
    out: list[tuple[str, str]] = []
    seen_class: set[str] = set()
    with open_tar(path, path, mode="r:*") as outer:
        for member in checked_members(outer, path, path.stat().st_size):
            if member.isdir():
                continue
            wnid = _class_of_member(path, member, known)
            if wnid in seen_class:
                raise PipelineError(f"{path}: class tar {member.name!r} appears twice")
            seen_class.add(wnid)
            label = f"{path}/{member.name}"
            fobj = outer.extractfile(member)
            assert fobj is not None
            with open_tar(fobj, label, mode="r:") as inner:
                out += [(PurePosixPath(m.name).name, wnid) for m in checked_members(inner, label, member.size) if m.isfile()]
    return out


def list_numbered_tar(path: Path, pattern: re.Pattern[str], truth: list[int], wnid_of_id: dict[int, str],
                      truth_label: str) -> list[tuple[str, str]]:
    """(image name, wnid) of every image of a flat numbered tar (val, test), headers only."""
    out = []
    with open_tar(path, path, mode="r:*") as tf:
        for member in checked_members(tf, path, path.stat().st_size):
            if member.isfile():
                base = PurePosixPath(member.name).name
                out.append((base, wnid_of_id[truth[_image_number(path, member.name, pattern, truth, truth_label) - 1]]))
    return out


def _image_number(path: Path, name: str, pattern: re.Pattern[str], truth: list[int], truth_label: str) -> int:
    base = PurePosixPath(name).name
    m = pattern.match(base)
    if not m:
        raise PipelineError(f"{path}: unexpected member {name!r} (expected names like {pattern.pattern})")
    index = int(m.group(1))
    if not 1 <= index <= len(truth):
        raise PipelineError(f"{path}: {base} is image {index}, but {truth_label} has {len(truth)} lines")
    return index


def iter_train_tar(path: Path, known: set[str],
                   patches: dict[str, bytes] | None = None) -> Iterator[RawRecord]:
    """Stream a tar of per-class tars (<wnid>.tar holding <wnid>_<n>.JPEG), outer and inner in order."""
    with open_tar(path, path) as outer:
        for member in checked_members(outer, path):
            if member.isdir():
                continue
            wnid = _class_of_member(path, member, known)
            fobj = outer.extractfile(member)
            assert fobj is not None
            for name, data in iter_tar_files(fobj, archive=f"{path}/{member.name}"):
                base = PurePosixPath(name).name
                if patches and base in patches:
                    data = patches[base]
                yield RawRecord(base, wnid, _payload(data))


def iter_numbered_tar(path: Path, pattern: re.Pattern[str], truth: list[int], wnid_of_id: dict[int, str],
                      truth_label: str, patches: dict[str, bytes] | None = None) -> Iterator[RawRecord]:
    """Stream a flat tar of <prefix>_%08d.JPEG images; image i's class is ground truth line i."""
    for name, data in iter_tar_files(path):
        base = PurePosixPath(name).name
        index = _image_number(path, name, pattern, truth, truth_label)
        if patches and base in patches:
            data = patches[base]
        yield RawRecord(base, wnid_of_id[truth[index - 1]], _payload(data))


class ILSVRCDataset(RawDataset):
    """The official release of one year; `files` maps each role of its layout to a local path."""

    def __init__(self, layout: Layout, files: dict[str, Path]):
        missing = [role for role in layout.files if role not in files]
        # files may also hold optional roles (ILSVRC-2010's patch archive)
        if missing:
            raise PipelineError(f"{layout.name}: no file given for {', '.join(missing)}")
        for role, path in files.items():
            if not Path(path).is_file():
                raise PipelineError(f"{layout.name}: {role} file {path} not found")
        self.layout = layout
        self.files = {role: Path(p) for role, p in files.items()}
        self.devkit = read_devkit(self.files["devkit"], layout)
        self.classes = [ClassInfo(w, short_name(self.devkit.words[w])) for w in sorted(self.devkit.words)]
        self.splits = list(layout.splits)
        self.eval_split = layout.eval_split
        self._patches = read_patches(self.files["patch"]) if "patch" in self.files else {}
        self._test_truth: list[int] | None = None
        if "test_ground_truth" in self.files:
            label = str(self.files["test_ground_truth"])
            self._test_truth = parse_ground_truth(self.files["test_ground_truth"].read_text(), label)
            unknown = sorted(set(self._test_truth) - set(self.devkit.wnid_of_id))
            if unknown:
                raise PipelineError(f"{label}: names class ids {unknown[:5]} that meta.mat does not list")

    def _pattern(self, split: str) -> re.Pattern[str]:
        return re.compile(rf"^ILSVRC{self.layout.year}_{split}_(\d{{8}})\.JPEG$")

    def _numbered(self, split: str) -> tuple[Path, re.Pattern[str], list[int], str]:
        """val's or test's tar, its image-name pattern, the ground truth (a class id per image
        number) and the file that truth comes from (for messages)."""
        if split == "val":
            return self.files["val"], self._pattern("val"), self.devkit.val_truth, self.layout.devkit_val_truth
        assert self._test_truth is not None
        return self.files["test"], self._pattern("test"), self._test_truth, str(self.files["test_ground_truth"])

    def iter_split(self, split: str) -> Iterator[RawRecord]:
        self._check_split(split)
        if split == "train":
            return iter_train_tar(self.files["train"], set(self.devkit.words), self._split_patches("train"))
        path, pattern, truth, label = self._numbered(split)
        return iter_numbered_tar(path, pattern, truth, self.devkit.wnid_of_id, label, self._split_patches(split))

    def split_file(self, split: str) -> str:
        """The file `split` is read from (for messages)."""
        self._check_split(split)
        return str(self.files[split])

    def listing(self, split: str) -> list[tuple[str, str]]:
        """(image name, wnid) of every image of `split`, in stream order, from the tar headers only."""
        self._check_split(split)
        if split == "train":
            return list_train_tar(self.files["train"], set(self.devkit.words))
        path, pattern, truth, label = self._numbered(split)
        return list_numbered_tar(path, pattern, truth, self.devkit.wnid_of_id, label)

    def expected(self, split: str) -> tuple[dict[str, int], str] | None:
        """Images per wnid that the devkit says `split` holds, and where it says so; None where it
        says nothing (a meta.mat without num_train_images)."""
        self._check_split(split)
        if split == "train":
            counts = self.devkit.num_train_images
            if not any(counts.values()):
                return None
            return dict(counts), f"{self.files['devkit']}:{self.layout.devkit_meta} num_train_images"
        _, _, truth, label = self._numbered(split)
        if split == "val":  # the truth file inside the devkit tar
            label = f"{self.files['devkit']}:{label}"
        counts = {w: 0 for w in self.devkit.words}
        for sid in truth:
            counts[self.devkit.wnid_of_id[sid]] += 1
        return counts, f"{label} (one image per line)"

    def _split_patches(self, split: str) -> dict[str, bytes]:
        return {name: data for (s, name), data in self._patches.items() if s == split}

    def count(self, split: str) -> int | None:
        self._check_split(split)
        if split == "train":
            total = sum(self.devkit.num_train_images.values())
            return total or None
        if split == "val":
            return len(self.devkit.val_truth)
        return len(self._test_truth) if self._test_truth is not None else None
