"""Files: atomic writes, checksums, and tar members that are safe to read.

Every output of the pipeline is written through `atomic_path` (temp file in the same folder +
rename), so an interrupted stage never leaves a half-written file that looks complete. The
temporary names carry their writer's pid (`.<name>.pid<PID>.<random>.tmp`), so the next writer
of the same path removes those a killed process left behind (`kill -9` runs no cleanup), and
only those: a live writer's, or anything else's, are left alone. A full disk (ENOSPC) is one
line naming the file (`DiskFullError`). Tar members are read through `iter_tar_files`, which
turns a damaged archive into one line naming the archive and the member (`ArchiveError`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from alexnet.errors import ArchiveError, ChecksumError, DiskFullError, UnsafeArchiveError  # noqa: F401 (raised here)

# What tarfile and the decompressors raise for a damaged archive.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of `path` (`.<name>.pid<PID>.*.tmp`) whose writer is dead; return them."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.pid(\d+)\..*\.tmp$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.pid{os.getpid()}."


@contextlib.contextmanager
def disk_full_as_error(path: str | Path | None = None) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT inside the block into a one-line DiskFullError naming `path` (None: a
    write anywhere, e.g. a whole stage's; the message names the file the OS reported)."""
    try:
        yield
    except OSError as e:
        if isinstance(e, DiskFullError) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {path} ({e.filename or path})" if path is not None else f" ({e.filename or e})"
        raise DiskFullError(e.errno, f"no space left on the device{where}; free some space and rerun") from e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        with disk_full_as_error(path):
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
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        with disk_full_as_error(path):
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


def hash_file(path: str | Path, h: Any, chunk: int = 1 << 22, bar: Any = None) -> Any:
    """`h` (a hashlib object) updated with the file's bytes, streamed in `chunk`s; returns `h`.
    The one file-hashing loop of the package (MD5 checks, resumed downloads, data fingerprints)."""
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
            if bar is not None:
                bar.update(len(block))
    return h


def md5sum(path: str | Path, progress: bool = True, chunk: int = 1 << 22) -> str:
    """MD5 of a file, streamed, with a progress bar for large files."""
    path = Path(path)
    size = path.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"md5 {path.name}",
              disable=not progress or size < (64 << 20)) as bar:
        return hash_file(path, hashlib.md5(), chunk, bar).hexdigest()


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


def open_tar(fileobj_or_path: Any, label: Any, mode: str = "r|*") -> tarfile.TarFile:
    """tarfile.open, with a damaged or non-tar file as one ArchiveError naming `label`."""
    try:
        if isinstance(fileobj_or_path, (str, Path)):
            return tarfile.open(fileobj_or_path, mode=mode)
        return tarfile.open(fileobj=fileobj_or_path, mode=mode)
    except ARCHIVE_ERRORS as e:
        if _is_io_error(e):
            raise  # a real I/O error (permission, missing file): let it say so itself
        raise ArchiveError(f"{label}: not a readable tar archive ({_short(e)})") from e


def _is_io_error(e: BaseException) -> bool:
    """A real I/O error (permission, missing file, disk), not a damaged archive: it says so itself."""
    return isinstance(e, OSError) and not isinstance(e, (tarfile.TarError, EOFError)) and e.errno is not None


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".replace("\n", " ")


@contextlib.contextmanager
def archive_errors(label: Any, where: list[str]) -> Iterator[None]:
    """Turn a damaged-archive error in the block into an ArchiveError naming `label` and where
    in it the reader was (`where[0]`, e.g. "member 'a.JPEG'"; kept up to date by the caller)."""
    try:
        yield
    except ArchiveError:
        raise
    except ARCHIVE_ERRORS as e:
        if _is_io_error(e):
            raise
        raise ArchiveError(f"{label}: damaged or cut short {where[0]} ({_short(e)})") from e


def checked_members(tf: tarfile.TarFile, label: Any, length: int | None = None) -> Iterator[tarfile.TarInfo]:
    """Each member of an open tar, checked first (`check_member`); a damaged archive is an
    ArchiveError naming `label` and the member the reader was at.

    With `length` (the archive's bytes; a tar opened for random access) a member whose data would
    end past the file is one too: tarfile stops without a word at a header cut short, so a tar cut
    inside a member would otherwise just list fewer members.
    """
    where = ["at its first member"]
    it = iter(tf)
    while True:
        with archive_errors(label, where):
            member = next(it, None)
            if member is None:
                return
            where[0] = f"at member {member.name!r}"
            check_member(member, label)
            if length is not None and member.isfile() and member.offset_data + member.size > length:
                raise EOFError(f"its data ends at byte {member.offset_data + member.size} of {length}")
        where[0] = f"after member {member.name!r}"
        yield member


def iter_tar_files(fileobj_or_path: Any, archive: str | Path | None = None) -> Iterator[tuple[str, bytes]]:
    """Stream (member name, bytes) for every regular file of a tar, checking each member first.

    Reads sequentially (mode 'r|*'), so a 140 GB tar or a tar nested inside another is never
    extracted to disk or seeked. A damaged archive (cut short, random bytes, bad compression)
    raises ArchiveError naming the archive and the member.
    """
    label = archive or getattr(fileobj_or_path, "name", fileobj_or_path)
    with open_tar(fileobj_or_path, label) as tf:
        for member in checked_members(tf, label):
            if not member.isfile():
                continue
            with archive_errors(label, [f"at member {member.name!r}"]):
                f = tf.extractfile(member)
                assert f is not None
                data = f.read()
                if len(data) != member.size:
                    raise EOFError(f"{len(data)} of {member.size} bytes")
            yield member.name, data
