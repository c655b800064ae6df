"""Which images of a raw dataset are taken, checked against what its devkit says it holds.

Owns one mechanism for two things (params `data.subset`):
- completeness: every split's listing (names and classes, read from the tar headers or the
  folder tree, never the image bytes) is compared with the devkit (per-class training counts
  from meta.mat's `num_train_images`, one validation/test image per ground-truth line), and
  member names must be unique. A difference is a one-line PipelineError naming the file and the
  counts, unless `allow_partial` accepts a deliberately partial copy;
- a subset: `wnids` or `classes` classes chosen with `seed`, and `train_per_class` /
  `eval_per_class` images of each, chosen with `seed` from the sorted names (recorded as
  `<wnid>/<file name>`).

`select` runs in stage download (cheap, before any decoding) and returns the record that
manifest.json keeps under "selection" (None when the whole, complete dataset is taken, so the
manifest of the default case is unchanged); `apply_selection` wraps the reader so that the same
readers stream exactly the selected images. Prepare copies `summary(record)` into meta.json and
its metrics, and so the report states it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from alexnet.config import SubsetConfig
from alexnet.data.sources.base import ClassInfo, RawDataset, RawRecord
from alexnet.errors import PipelineError


class ListableDataset(Protocol):
    """What `select` needs of a reader besides RawDataset's interface."""

    classes: list[ClassInfo]
    splits: list[str]
    eval_split: str

    def listing(self, split: str) -> list[tuple[str, str]]: ...

    def expected(self, split: str) -> tuple[dict[str, int], str] | None: ...

    def split_file(self, split: str) -> str: ...


def _choose_classes(all_wnids: list[str], cfg: SubsetConfig) -> list[str]:
    if cfg.wnids:
        unknown = sorted(set(cfg.wnids) - set(all_wnids))
        if unknown:
            raise PipelineError(f"data.subset.wnids: {', '.join(unknown[:5])} not among the dataset's "
                                f"{len(all_wnids)} classes")
        return sorted(cfg.wnids)
    if cfg.classes:
        if cfg.classes > len(all_wnids):
            raise PipelineError(f"data.subset.classes: {cfg.classes} asked, the dataset has {len(all_wnids)}")
        picked = np.random.default_rng([cfg.seed, 0]).choice(len(all_wnids), size=cfg.classes, replace=False)
        return sorted(all_wnids[i] for i in picked)
    return list(all_wnids)


def _check_unique(listing: list[tuple[str, str]], file: str) -> None:
    # (name, class) pairs: an image folder's names are unique per class folder only.
    counts = collections.Counter(listing)
    dups = sorted(key for key, k in counts.items() if k > 1)
    if dups:
        raise PipelineError(f"{file}: member name {dups[0][0]} appears {counts[dups[0]]} times "
                            f"({len(dups)} names repeated); each image must appear once")


def _compare(by_class: dict[str, list[str]], chosen: list[str], expected: dict[str, int], where: str,
             file: str, allow_partial: bool) -> dict[str, int] | None:
    """Check the chosen classes' counts against the devkit; return the shortfall (None if none)."""
    have = {w: len(by_class.get(w, [])) for w in chosen}
    want = {w: expected.get(w, 0) for w in chosen}
    over = [w for w in chosen if have[w] > want[w]]
    short = [w for w in chosen if have[w] < want[w]]
    n_have, n_want = sum(have.values()), sum(want.values())
    if over:
        w = over[0]
        raise PipelineError(f"{file}: {n_have} images where {where} lists {n_want}; class {w} has {have[w]} "
                            f"of {want[w]} ({len(over)} classes have more than listed: the files and the "
                            "devkit do not belong together)")
    if not short:
        return None
    empty = sum(1 for w in short if have[w] == 0)
    if not allow_partial:
        w = short[0]
        raise PipelineError(f"{file}: {n_have} images where {where} lists {n_want}; {len(short)} of {len(chosen)} "
                            f"classes are short ({empty} have none; e.g. {w}: {have[w]} of {want[w]}); an "
                            "incomplete copy? (data.subset.allow_partial: true takes a deliberately partial one)")
    return {"images_missing": n_want - n_have, "classes_short": len(short), "classes_without_images": empty}


def select(ds: ListableDataset, cfg: SubsetConfig) -> dict[str, Any] | None:
    """Check every split's listing and pick the subset; the manifest's "selection" record, or None
    when everything is taken and complete (so the default manifest is unchanged)."""
    all_wnids = [c.wnid for c in ds.classes]
    chosen = _choose_classes(all_wnids, cfg)
    chosen_set = set(chosen)
    splits: dict[str, dict[str, Any]] = {}
    shortfall: dict[str, dict[str, int]] = {}
    for s, split in enumerate(ds.splits):
        file = ds.split_file(split)
        listing = ds.listing(split)
        _check_unique(listing, file)
        by_class: dict[str, list[str]] = collections.defaultdict(list)
        for name, wnid in listing:
            if wnid in chosen_set:
                by_class[wnid].append(f"{wnid}/{name}")  # the key SelectedDataset filters on
        exp = ds.expected(split)
        expected_total = None
        if exp is not None:
            counts, where = exp
            expected_total = sum(counts.get(w, 0) for w in chosen)
            short = _compare(by_class, chosen, counts, where, file, cfg.allow_partial)
            if short:
                shortfall[split] = short
        per = cfg.train_per_class if split == "train" else cfg.eval_per_class
        names = None
        if per:
            names = []
            for c, wnid in enumerate(chosen):
                mine = sorted(by_class.get(wnid, []))
                if len(mine) > per:
                    keep = np.random.default_rng([cfg.seed, 1, s, c]).choice(len(mine), size=per, replace=False)
                    mine = [mine[i] for i in sorted(keep)]
                names += mine
            names.sort()
        images = len(names) if names is not None else sum(len(v) for v in by_class.values())
        splits[split] = {"images": images, "expected": expected_total, "names": names}
    if not cfg.active and not shortfall:
        return None
    return {"subset": dataclasses.asdict(cfg), "classes": chosen if chosen != all_wnids else None,
            "num_classes": len(chosen), "splits": splits, "complete": not shortfall, "shortfall": shortfall}


def summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What prepare records of a selection (meta.json "subset", the report): no name lists."""
    if record is None:
        return None
    return {"params": record["subset"], "num_classes": record["num_classes"],
            "images": {s: v["images"] for s, v in record["splits"].items()},
            "complete": record["complete"], "shortfall": record["shortfall"]}


class SelectedDataset(RawDataset):
    """`base` restricted to a selection record: its classes, and per split its names (or all)."""

    def __init__(self, base: RawDataset, record: dict[str, Any]):
        self.base = base
        chosen = record["classes"]
        self._chosen = set(chosen) if chosen is not None else {c.wnid for c in base.classes}
        self.classes = [c for c in base.classes if c.wnid in self._chosen]
        self.splits = list(base.splits)
        self.eval_split = base.eval_split
        self._splits = record["splits"]

    def iter_split(self, split: str) -> Iterator[RawRecord]:
        self._check_split(split)
        names = self._splits[split]["names"]
        names = set(names) if names is not None else None
        for rec in self.base.iter_split(split):
            if rec.wnid in self._chosen and (names is None or f"{rec.wnid}/{rec.source}" in names):
                yield rec

    def count(self, split: str) -> int | None:
        self._check_split(split)
        return int(self._splits[split]["images"])

    def split_file(self, split: str) -> str:
        return self.base.split_file(split)  # type: ignore[attr-defined]


def apply_selection(ds: RawDataset, record: dict[str, Any] | None) -> RawDataset:
    """The reader of exactly the selected images (`ds` itself when nothing was selected)."""
    return ds if record is None else SelectedDataset(ds, record)
