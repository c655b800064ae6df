"""Raw datasets: where the images come from, verified, and how to stream them.

Owns stage `download` (`download_raw`: params -> data/raw/ with manifest.json) and the reader
every later stage uses (`open_raw(raw_dir) -> RawDataset`), per docs/architecture.md. The sources
(params.yaml `data.source`):

    tiny         generated ILSVRC-2012-format files (alexnet.data.sources.tiny), written into data/raw/
    ilsvrc2012   the three official files in data.root, MD5-verified in place, never copied
    ilsvrc2010   the 2010 release in data.root (the paper's Table 1 is on its test set)
    imagefolder  data.root/train/<class>/, data.root/val/<class>/
    url          the official files of data.url_layout fetched from data.urls into data/raw/

A user's own files (ilsvrc*, imagefolder) stay where they are, in data.root, which stage
download lists as a dependency in dvc.yaml: DVC hashes that folder's files (an external
dependency when it lies outside the repository), so replacing one makes `dvc status` name it
and `dvc repro` rerun download and what follows. manifest.json (a cached output: its hash decides
whether prepare reruns) identifies them by what is in them, not where they are or when they were
touched: file names relative to `data.root`, the MD5s, and per file its bytes and a digest of its
first and last MiB (an image folder: its listing of relative paths and sizes). So moving the files
and pointing data.root there reruns download (it MD5-checks them again) and nothing after it:
prepare finds them through data.root, which it reads but does not depend on. `open_raw` refuses
files that no longer match the manifest; where they were, and their mtimes, go to the run record
(records/download.json).

Before any decoding, download also checks every split's listing against the devkit and takes
the subset `data.subset` asks for (alexnet.data.sources.subset); the record goes into manifest.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from alexnet.config import DataConfig, TinyConfig
from alexnet.data.sources.base import ClassInfo, RawDataset, RawRecord
from alexnet.data.sources.ilsvrc import LAYOUTS, ILSVRCDataset
from alexnet.data.sources.imagefolder import ImageFolderDataset
from alexnet.data.sources.subset import apply_selection, select
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir, read_json, verify_md5, write_json

__all__ = ["ClassInfo", "RawDataset", "RawRecord", "download_raw", "open_raw", "MANIFEST", "read_manifest"]

MANIFEST = "manifest.json"
ROOT_PARAM = "data.root"  # manifest "root": the files' names are relative to params data.root
RECORD_KEY = "where"  # in download_raw's return only (the run record): paths and mtimes of the user's files


def _resolve(raw_dir: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else raw_dir / p


SAMPLE = 1 << 20  # bytes read from each end of a user's file for its content_stat


def content_stat(path: Path) -> dict[str, Any] | None:
    """What identifies a file wherever it lies: its name, bytes and a SHA-256 of its first and
    last SAMPLE bytes (None if missing). Cheap on a 140 GB tar; a change in the middle of a file
    of the same size goes unnoticed here, and download's MD5 check catches it."""
    try:
        size = path.stat().st_size
        h = hashlib.sha256()
        with open(path, "rb") as f:
            h.update(f.read(SAMPLE))
            if size > SAMPLE:
                f.seek(max(SAMPLE, size - SAMPLE))
                h.update(f.read(SAMPLE))
    except FileNotFoundError:
        return None
    return {"name": path.name, "bytes": size, "ends_sha256": h.hexdigest()}


def file_stat(path: Path) -> dict[str, Any] | None:
    """What identifies a file without reading it: its path, bytes and mtime_ns (None if missing)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def tree_stats(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An image folder's identity, from one walk of root/train and root/val in sorted order
    (dangling links included as such): file count, bytes and a digest of every entry, as
    (where and when: the root's path, each (path, bytes, mtime_ns); what: each (path relative to
    root, bytes), no path, no time)."""
    timed, untimed = hashlib.sha256(), hashlib.sha256()
    files = total = 0
    for split in ("train", "val"):
        for dirpath, dirnames, filenames in os.walk(root / split):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                    entry = f"{p.relative_to(root)}\0{st.st_size}"
                    timed.update(f"{entry}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                    untimed.update(f"{entry}\n".encode("utf-8", "surrogateescape"))
                    files, total = files + 1, total + st.st_size
                except FileNotFoundError:
                    entry = f"{p.relative_to(root)}\0dangling\n".encode("utf-8", "surrogateescape")
                    timed.update(entry)
                    untimed.update(entry)
    counts = {"files": files, "bytes": total}
    return ({"path": str(root), **counts, "listing_sha256": timed.hexdigest()},
            {**counts, "listing_sha256": untimed.hexdigest()})


def _user_root(data: DataConfig) -> Path:
    return Path(data.root).expanduser().resolve()


def _stat_of(files: dict[str, Path], layout: str) -> dict[str, Any]:
    """Where the user's files are and when they were touched (the run record, records/download.json):
    each file's stat (ILSVRC layouts; None where missing), or the whole tree's (an image folder)."""
    if layout == "imagefolder":
        return {"root": tree_stats(files["root"])[0]}
    return {role: file_stat(path) for role, path in files.items()}


def _content_of(files: dict[str, Path], layout: str) -> dict[str, Any]:
    """What is in the user's files, wherever they are (manifest.json's "content")."""
    if layout == "imagefolder":
        return {"root": tree_stats(files["root"])[1]}
    return {role: content_stat(path) for role, path in files.items()}


def check_unchanged(manifest: dict[str, Any], files: dict[str, Path], label: Path) -> None:
    """Refuse user files that differ from what download recorded (replaced after it ran)."""
    recorded = manifest.get("content")
    if not recorded:
        return
    now = _content_of(files, manifest.get("layout", ""))
    for role, before in recorded.items():
        if now.get(role) != before:
            raise PipelineError(f"{files[role]} changed since the download stage recorded it in {label} "
                                "(replaced, or data.root points at other files): run `dvc repro` so that "
                                "download checks it again")


def read_manifest(raw_dir: str | Path) -> dict[str, Any]:
    """data/raw/manifest.json as download wrote it; missing: a PipelineError saying what to run."""
    manifest_path = Path(raw_dir) / MANIFEST
    if not manifest_path.is_file():
        raise PipelineError(f"{manifest_path} not found: run the download stage first (dvc repro download)")
    return read_json(manifest_path)


def open_raw(raw_dir: str | Path, root: str | Path | None = None) -> RawDataset:
    """Open the raw dataset that stage `download` described in `raw_dir`/manifest.json: the
    selected images only (manifest "selection"), refusing user files changed since download.
    A user's own files (manifest "root": "data.root") are found in `root` (params data.root)."""
    raw_dir = Path(raw_dir)
    manifest_path = raw_dir / MANIFEST
    manifest = read_manifest(raw_dir)
    layout = manifest.get("layout")
    base = raw_dir
    if manifest.get("root") == ROOT_PARAM:
        if not root:
            raise PipelineError(f"{manifest_path} lists files in data.root, and data.root is empty")
        base = Path(root).expanduser().resolve()
    files = {role: _resolve(base, p) for role, p in manifest.get("files", {}).items()}
    check_unchanged(manifest, files, manifest_path)
    if layout in LAYOUTS:
        ds: RawDataset = ILSVRCDataset(LAYOUTS[layout], files)
    elif layout == "imagefolder":
        ds = ImageFolderDataset(files["root"])
    else:
        raise PipelineError(f"{manifest_path}: unknown layout {layout!r}")
    return apply_selection(ds, manifest.get("selection"))


def _verify(files: dict[str, Path], expected: dict[str, str | None], check: bool) -> tuple[dict, bool]:
    """Check every file exists, and its MD5 where one is expected and `check`; return (md5, verified)."""
    for role, path in files.items():
        if not path.is_file():
            raise PipelineError(f"missing {role} file: {path} not found")
    md5: dict[str, str | None] = {}
    for role, path in files.items():
        want = expected.get(role)
        if check and want:
            verify_md5(path, want)
            md5[role] = want
        else:
            md5[role] = None
    verified = check and all(md5.values())
    return md5, verified


def _finish(ds: Any, data: DataConfig, manifest: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Check the listing against the devkit, take the subset; add what the manifest records."""
    selection = select(ds, data.subset)
    if selection is not None:
        manifest["selection"] = selection
    skipped = getattr(ds, "skipped", None)
    if skipped is not None:  # image folders: what was left out, and why
        manifest["skipped"] = skipped
        if any(skipped.values()) and progress:
            print("download: skipped in " + str(data.root) + ": "
                  + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items() if v))
    return manifest


def download_raw(data: DataConfig, tiny: TinyConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Stage `download`: produce `out_dir` (atomically) with a verified dataset and manifest.json."""
    out_dir = Path(out_dir)
    if data.source == "url":
        return _download_urls(data, out_dir, progress)
    with atomic_dir(out_dir) as tmp:
        extra: dict = {}
        where: dict | None = None  # a user's files: their paths and mtimes, for the run record only
        if data.source == "tiny":
            from alexnet.data.sources import tiny as tiny_source  # heavy imports only when used

            info = tiny_source.generate(tiny, tmp, progress=progress)
            layout = LAYOUTS["ilsvrc2012"]
            paths = {role: tmp / name for role, name in info["files"].items()}
            # The MD5s the generator computed play the published ones' part: same code path.
            md5, verified = _verify(paths, info["md5"], True)
            files = dict(info["files"])
            extra = {"quirks": info["quirks"]}
        elif data.source in LAYOUTS:
            layout = LAYOUTS[data.source]
            root = _user_root(data)
            if not root.is_dir():
                raise PipelineError(f"data.root {root} is not a folder (data.source {data.source} expects the "
                                    f"official files there: {', '.join(layout.files.values())})")
            paths = {role: root / name for role, name in layout.files.items()}
            for role, name in layout.optional.items():  # used when present, never required
                if (root / name).is_file():
                    paths[role] = root / name
            where = _stat_of(paths, layout.name)  # before reading: a file replaced meanwhile then differs
            content = _content_of(paths, layout.name)
            md5, verified = _verify({r: p for r, p in paths.items() if r in layout.files}, layout.md5,
                                    data.verify_md5)
            md5.update({role: None for role in paths if role not in layout.files})
            files = {role: p.name for role, p in paths.items()}  # verified in place, not copied
            extra = {"root": ROOT_PARAM, "content": content}
        elif data.source == "imagefolder":
            root = _user_root(data)
            timed, untimed = tree_stats(root)
            ds = ImageFolderDataset(root)  # fails now, naming the problem, if the tree is wrong
            manifest = {"source": "imagefolder", "layout": "imagefolder", "files": {"root": "."}, "root": ROOT_PARAM,
                        "md5": {"root": None}, "verified": False, "content": {"root": untimed}}
            write_json(tmp / MANIFEST, _finish(ds, data, manifest, progress))
            return {**manifest, RECORD_KEY: {"root": timed}}
        else:  # config.py's Literal already refuses this; kept for a clear message
            raise PipelineError(f"unknown data.source {data.source!r}")
        # Parse the devkit and list every tar now, so a broken or incomplete file fails this
        # stage (in seconds) rather than the next (after hours of decoding).
        ds = ILSVRCDataset(layout, paths)
        manifest = {"source": data.source, "layout": layout.name, "files": files, "md5": md5,
                    "verified": bool(verified), **extra}
        write_json(tmp / MANIFEST, _finish(ds, data, manifest, progress))
    return {**manifest, RECORD_KEY: where} if where is not None else manifest


def _download_urls(data: DataConfig, out_dir: Path, progress: bool) -> dict:
    """Source url: fetch each file (resumable) into a folder outside the stage's output, check
    them all there (MD5, devkit, listing), and only then move them into the output. A failure at
    any step keeps every finished download for the next run."""
    from alexnet.data.sources import url as url_source

    layout = LAYOUTS[data.url_layout]
    missing = [name for name in layout.files.values() if name not in data.urls]
    unknown = [name for name in data.urls if name not in layout.files.values()]
    if missing or unknown:
        raise PipelineError(f"data.urls must map exactly the {layout.name} file names to URLs; "
                            f"missing: {missing or 'none'}, unexpected: {unknown or 'none'}")
    partial = out_dir.parent / f".{out_dir.name}.downloads"
    for role, name in layout.files.items():
        want = layout.md5.get(role) if data.verify_md5 else None
        if (partial / name).is_file():  # finished by an earlier, interrupted run
            if want:
                verify_md5(partial / name, want)
        else:
            url_source.fetch(data.urls[name], partial / name, md5=want, progress=progress)
    paths = {role: partial / name for role, name in layout.files.items()}
    ds = ILSVRCDataset(layout, paths)  # the devkit and the listing, checked where the files are
    md5 = {role: (layout.md5.get(role) if data.verify_md5 else None) for role in layout.files}
    manifest = {"source": "url", "layout": layout.name, "files": dict(layout.files), "md5": md5,
                "verified": bool(data.verify_md5 and all(md5.values()))}
    manifest = _finish(ds, data, manifest, progress)
    with atomic_dir(out_dir) as tmp:
        moved: list[str] = []
        try:
            for name in layout.files.values():
                (partial / name).replace(tmp / name)
                moved.append(name)
            write_json(tmp / MANIFEST, manifest)
        except BaseException:
            for name in moved:  # back where the next run looks, before the folder is removed
                (tmp / name).replace(partial / name)
            raise
    with contextlib.suppress(OSError):
        partial.rmdir()  # empty once every file has moved into place
    return manifest
