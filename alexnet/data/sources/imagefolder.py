"""A folder of class folders: root/train/<class>/<image>, root/val/<class>/<image>.

Owns reading image-folder datasets users already have (Imagenette, ImageNet subsets, their
own extracted ImageNet). Class = folder name; labels are positions among the sorted train
folders (ImageFolder's convention). Folders named like WordNet ids are kept as wnids, with the
devkit's name where the embedded table knows it. Files are read in sorted order. What is
skipped is counted (`skipped`: dangling links, unknown extensions, hidden files, sub-folders) and
the download stage reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from alexnet.data.sources.base import ClassInfo, RawDataset, RawRecord
from alexnet.data.sources.synsets import WORDS, short_name
from alexnet.errors import PipelineError

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


    @cached_property
    def _scan(self) -> tuple[dict[str, list[tuple[str, Path]]], dict[str, int]]:
        out: dict[str, list[tuple[str, Path]]] = {}
        skipped = {"dangling_links": 0, "unknown_extension": 0, "hidden": 0, "not_a_file": 0}
        for split in self.splits:
            files = []
            for c in self.classes:
                d = self.root / split / c.wnid
                if not d.is_dir():
                    continue
                for p in sorted(d.iterdir()):
                    if p.name.startswith("."):
                        skipped["hidden"] += 1
                    elif p.is_symlink() and not p.exists():
                        skipped["dangling_links"] += 1
                    elif not p.is_file():
                        skipped["not_a_file"] += 1
                    elif p.suffix.lower() not in IMG_EXTENSIONS:
                        skipped["unknown_extension"] += 1
                    else:
                        files.append((c.wnid, p))
            out[split] = files
        return out, skipped

    @property
    def _files(self) -> dict[str, list[tuple[str, Path]]]:
        return self._scan[0]

    @property
    def skipped(self) -> dict[str, int]:
        """Entries of the class folders that are not read, by reason (torchvision's rules)."""
        return dict(self._scan[1])

    def split_file(self, split: str) -> str:
        self._check_split(split)
        return str(self.root / split)

    def listing(self, split: str) -> list[tuple[str, str]]:
        """(file name, class) of every image of `split` (a name is unique within its class folder)."""
        self._check_split(split)
        return [(path.name, wnid) for wnid, path in self._files[split]]

    def expected(self, split: str) -> None:
        return None  # no devkit: the tree is what there is

    def iter_split(self, split: str) -> Iterator[RawRecord]:
        self._check_split(split)
        for wnid, path in self._files[split]:
            try:
                data = path.read_bytes()
            except OSError as e:
                raise PipelineError(f"{path}: cannot be read ({e.strerror or e})") from e
            yield RawRecord(path.name, wnid, data)

    def count(self, split: str) -> int | None:
        self._check_split(split)
        return len(self._files[split])
