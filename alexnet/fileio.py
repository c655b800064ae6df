"""Files: atomic writes, checksums, and tar members that are safe to read.

Every output of the pipeline is written through `atomic_path` (temp file in the same folder +
rename), so an interrupted stage never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm


class UnsafeArchiveError(ValueError):
    """A tar member that could escape its folder or is not a plain file or folder."""


class ChecksumError(ValueError):
    """A file's checksum differs from the expected one."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, keys in insertion order, floats as Python prints them."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def md5sum(path: str | Path, progress: bool = True, chunk: int = 1 << 22) -> str:
    """MD5 of a file, streamed, with a progress bar for large files."""
    path = Path(path)
    h = hashlib.md5()
    size = path.stat().st_size
    with path.open("rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"md5 {path.name}",
                                    disable=not progress or size < (64 << 20)) as bar:
        while block := f.read(chunk):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def verify_md5(path: str | Path, expected: str, progress: bool = True) -> None:
    """Raise ChecksumError naming the file if its MD5 is not `expected`."""
    actual = md5sum(path, progress=progress)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 {actual} does not match the expected {expected} "
            "(a corrupt or incomplete copy; set data.verify_md5: false only for a deliberately re-packed one)")


def check_member(member: tarfile.TarInfo, archive: str | Path) -> None:
    """Refuse tar members with absolute paths, '..', links or device files."""
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or (parts and (":" in parts[0])):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the archive with '..'")
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link; links are refused")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a device, fifo or other special file")


def iter_tar_files(fileobj_or_path: Any, archive: str | Path | None = None) -> Iterator[tuple[str, bytes]]:
    """Stream (member name, bytes) for every regular file of a tar, checking each member first.

    Reads sequentially (mode 'r|*'), so a 140 GB tar or a tar nested inside another is never
    extracted to disk or seeked.
    """
    label = archive or getattr(fileobj_or_path, "name", fileobj_or_path)
    if isinstance(fileobj_or_path, (str, Path)):
        tf = tarfile.open(fileobj_or_path, mode="r|*")
    else:
        tf = tarfile.open(fileobj=fileobj_or_path, mode="r|*")
    with tf:
        for member in tf:
            check_member(member, label)
            if member.isfile():
                f = tf.extractfile(member)
                assert f is not None
                yield member.name, f.read()
