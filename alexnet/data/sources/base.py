"""The reader interface every raw source shares: classes, splits, and streamed records.

Owns `ClassInfo`, `RawRecord` and `RawDataset` (docs/architecture.md, "data/raw/"). A label is
always a position in the list of WordNet ids sorted (torchvision's and ImageFolder's convention),
whatever order a devkit numbers its classes in.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from dataclasses import dataclass

WNID_RE = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class ClassInfo:
    """One class: its WordNet id and a human-readable name."""

    wnid: str
    name: str


@dataclass(frozen=True)
class RawRecord:
    """One image as stored in the raw dataset: file base name, class, undecoded bytes."""

    source: str
    wnid: str
    data: bytes


class RawDataset(abc.ABC):
    """A raw dataset: `.classes` sorted by wnid (label = position), `.splits`, `.eval_split`."""

    classes: list[ClassInfo]
    splits: list[str]
    eval_split: str

    @abc.abstractmethod
    def iter_split(self, split: str) -> Iterator[RawRecord]:
        """Stream the split's records in a deterministic order, nothing extracted to disk."""

    @abc.abstractmethod
    def count(self, split: str) -> int | None:
        """How many records `iter_split(split)` yields, where known without reading it (progress bars)."""

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; this dataset has {', '.join(self.splits)}")
