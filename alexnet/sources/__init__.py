"""Raw datasets: where the images come from, verified, and how to stream them.

Owns stage `download` (`download_raw`: params -> data/raw/ with manifest.json) and the reader
every later stage uses (`open_raw(raw_dir) -> RawDataset`), per docs/architecture.md. Sources
(params.yaml `data.source`):

    tiny         generated ILSVRC-2012-format files (alexnet.sources.tiny), written into data/raw/
    ilsvrc2012   the three official files in data.root, MD5-verified in place, never copied
    ilsvrc2010   the 2010 release in data.root (the paper's Table 1 is on its test set)
    imagefolder  data.root/train/<class>/, data.root/val/<class>/
    url          the official files of data.url_layout fetched from data.urls into data/raw/
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from alexnet.cli import PipelineError
from alexnet.config import DataConfig, TinyConfig
from alexnet.fileio import atomic_dir, read_json, verify_md5, write_json
from alexnet.sources.base import ClassInfo, RawDataset, RawRecord
from alexnet.sources.ilsvrc import LAYOUTS, ILSVRCDataset
from alexnet.sources.imagefolder import ImageFolderDataset

__all__ = ["ClassInfo", "RawDataset", "RawRecord", "download_raw", "open_raw", "MANIFEST"]

MANIFEST = "manifest.json"


def _resolve(raw_dir: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else raw_dir / p


def open_raw(raw_dir: str | Path) -> RawDataset:
    """Open the raw dataset that stage `download` described in `raw_dir`/manifest.json."""
    raw_dir = Path(raw_dir)
    manifest_path = raw_dir / MANIFEST
    if not manifest_path.is_file():
        raise PipelineError(f"{manifest_path} not found: run the download stage first (dvc repro download)")
    manifest = read_json(manifest_path)
    layout = manifest.get("layout")
    files = {role: _resolve(raw_dir, p) for role, p in manifest.get("files", {}).items()}
    if layout in LAYOUTS:
        return ILSVRCDataset(LAYOUTS[layout], files)
    if layout == "imagefolder":
        return ImageFolderDataset(files["root"])
    raise PipelineError(f"{manifest_path}: unknown layout {layout!r}")


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


def download_raw(data: DataConfig, tiny: TinyConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Stage `download`: produce `out_dir` (atomically) with a verified dataset and manifest.json."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        extra: dict = {}
        if data.source == "tiny":
            from alexnet.sources import tiny as tiny_source  # heavy imports only when used

            info = tiny_source.generate(tiny, tmp, progress=progress)
            layout = LAYOUTS["ilsvrc2012"]
            paths = {role: tmp / name for role, name in info["files"].items()}
            # The MD5s the generator computed play the published ones' part: same code path.
            md5, verified = _verify(paths, info["md5"], True)
            files = dict(info["files"])
            extra = {"quirks": info["quirks"]}
        elif data.source in LAYOUTS:
            layout = LAYOUTS[data.source]
            root = Path(data.root).expanduser().resolve()
            if not root.is_dir():
                raise PipelineError(f"data.root {root} is not a folder (data.source {data.source} expects the "
                                    f"official files there: {', '.join(layout.files.values())})")
            paths = {role: root / name for role, name in layout.files.items()}
            md5, verified = _verify(paths, layout.md5, data.verify_md5)
            for role, name in layout.optional.items():  # used when present, never required
                if (root / name).is_file():
                    paths[role], md5[role] = root / name, None
            files = {role: str(p) for role, p in paths.items()}  # verified in place, not copied
        elif data.source == "url":
            from alexnet.sources import url as url_source

            layout = LAYOUTS[data.url_layout]
            missing = [name for name in layout.files.values() if name not in data.urls]
            unknown = [name for name in data.urls if name not in layout.files.values()]
            if missing or unknown:
                raise PipelineError(f"data.urls must map exactly the {layout.name} file names to URLs; "
                                    f"missing: {missing or 'none'}, unexpected: {unknown or 'none'}")
            # Downloads (partial and finished) live outside the stage's output until all are done,
            # so a failure on one file never throws away another, and a rerun resumes.
            partial = out_dir.parent / f".{out_dir.name}.downloads"
            for role, name in layout.files.items():
                want = layout.md5.get(role) if data.verify_md5 else None
                if (partial / name).is_file():  # finished by an earlier, interrupted run
                    if want:
                        verify_md5(partial / name, want)
                else:
                    url_source.fetch(data.urls[name], partial / name, md5=want, progress=progress)
            for name in layout.files.values():
                (partial / name).replace(tmp / name)
            with contextlib.suppress(OSError):
                partial.rmdir()  # empty once every file has moved into place
            paths = {role: tmp / name for role, name in layout.files.items()}
            md5 = {role: (layout.md5.get(role) if data.verify_md5 else None) for role in layout.files}
            verified = data.verify_md5 and all(md5.values())
            files = dict(layout.files)
        elif data.source == "imagefolder":
            root = Path(data.root).expanduser().resolve()
            ImageFolderDataset(root)  # fails now, naming the problem, if the tree is wrong
            manifest = {"source": "imagefolder", "layout": "imagefolder", "files": {"root": str(root)},
                        "md5": {"root": None}, "verified": False}
            write_json(tmp / MANIFEST, manifest)
            return manifest
        else:  # config.py's Literal already refuses this; kept for a clear message
            raise PipelineError(f"unknown data.source {data.source!r}")
        # Parse the devkit now, so a broken one fails this stage rather than the next.
        ILSVRCDataset(layout, paths)
        manifest = {"source": data.source, "layout": layout.name, "files": files, "md5": md5,
                    "verified": bool(verified), **extra}
        write_json(tmp / MANIFEST, manifest)
    return manifest
