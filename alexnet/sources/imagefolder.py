"""A folder of class folders: root/train/<class>/<image>, root/val/<class>/<image>.

Owns reading image-folder datasets users already have (Imagenette, ImageNet subsets, their
own extracted ImageNet). Class = folder name; labels are positions among the sorted train
folders (ImageFolder's convention). Folders named like WordNet ids are kept as wnids, with the
devkit's name where the embedded table knows it. Files are read in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from alexnet.cli import PipelineError
from alexnet.sources.base import WNID_RE, ClassInfo, RawDataset, RawRecord
from alexnet.sources.synsets import WORDS, short_name

# What torchvision's ImageFolder accepts, compared case-insensitively.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


class ImageFolderDataset(RawDataset):
    """root/train and root/val, one sub-folder per class."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for split in ("train", "val"):
            if not (self.root / split).is_dir():
                raise PipelineError(f"image folder {self.root}: no {split}/ folder (expected "
                                    f"{self.root}/train/<class>/ and {self.root}/val/<class>/)")
        names = _class_dirs(self.root / "train")
        if not names:
            raise PipelineError(f"image folder {self.root}/train has no class folders")
        extra = sorted(set(_class_dirs(self.root / "val")) - set(names))
        if extra:
            raise PipelineError(f"image folder {self.root}/val has classes not in train/: {', '.join(extra[:5])}")
        self.classes = [ClassInfo(n, short_name(WORDS[n]) if n in WORDS else n) for n in names]
        self.splits = ["train", "val"]
        self.eval_split = "val"

    @property
    def uses_wnids(self) -> bool:
        """True if every class folder is named like a WordNet id."""
        return all(WNID_RE.match(c.wnid) for c in self.classes)

    @cached_property
    def _files(self) -> dict[str, list[tuple[str, Path]]]:
        out: dict[str, list[tuple[str, Path]]] = {}
        for split in self.splits:
            files = []
            for c in self.classes:
                d = self.root / split / c.wnid
                if d.is_dir():
                    files += [(c.wnid, p) for p in sorted(d.iterdir())
                              if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMG_EXTENSIONS]
            out[split] = files
        return out

    def iter_split(self, split: str) -> Iterator[RawRecord]:
        self._check_split(split)
        for wnid, path in self._files[split]:
            yield RawRecord(path.name, wnid, path.read_bytes())

    def count(self, split: str) -> int | None:
        self._check_split(split)
        return len(self._files[split])
