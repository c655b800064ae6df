"""Atomic writes, checksums and tar member checks."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import pytest

from alexnet.fileio import (
    ChecksumError,
    UnsafeArchiveError,
    atomic_dir,
    atomic_path,
    check_member,
    iter_tar_files,
    md5sum,
    read_json,
    verify_md5,
    write_json,
    write_text,
)


def test_atomic_path_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # not visible until the block succeeds
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new"  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temp file left


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "raw"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with atomic_dir(out) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]  # replaced, not merged
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "c").write_text("3")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temp or .old folders left


def test_json_round_trip(tmp_path):
    obj = {"b": 1, "a": [1.5, None, "x"], "nested": {"k": True}}
    write_json(tmp_path / "m.json", obj)
    assert read_json(tmp_path / "m.json") == obj
    assert list(read_json(tmp_path / "m.json")) == ["b", "a", "nested"]  # insertion order kept
    write_text(tmp_path / "t.txt", "hi")
    assert (tmp_path / "t.txt").read_text() == "hi"


def test_md5_matches_hashlib_across_chunk_boundaries(tmp_path):
    data = os.urandom(10_000)
    (tmp_path / "f").write_bytes(data)
    for chunk in (1, 7, 4096, 1 << 22):
        assert md5sum(tmp_path / "f", progress=False, chunk=chunk) == hashlib.md5(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert md5sum(tmp_path / "empty", progress=False) == "d41d8cd98f00b204e9800998ecf8427e"


def test_verify_md5(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    verify_md5(tmp_path / "f", "900150983CD24FB0D6963F7D28E17F72", progress=False)  # case-insensitive
    with pytest.raises(ChecksumError, match=r"f: MD5 900150983cd24fb0d6963f7d28e17f72 does not match"):
        verify_md5(tmp_path / "f", "0" * 32, progress=False)


def _info(name: str, kind: str = "file") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE,
                 "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    return info


@pytest.mark.parametrize("name,kind,message", [
    ("/etc/passwd", "file", "absolute path"),
    ("C:/Windows/x", "file", "absolute path"),
    ("\\\\server\\x", "file", "absolute path"),
    ("a/../../x", "file", "'..'"),
    ("..", "dir", "'..'"),
    ("link", "sym", "link"),
    ("hard", "lnk", "link"),
    ("tty", "chr", "device"),
    ("disk", "blk", "device"),
    ("pipe", "fifo", "fifo"),
])
def test_check_member_refuses(name, kind, message):
    with pytest.raises(UnsafeArchiveError, match=message) as err:
        check_member(_info(name, kind), "arch.tar")
    assert "arch.tar" in str(err.value)


@pytest.mark.parametrize("name,kind", [("a/b.JPEG", "file"), ("a/", "dir"), ("x..y.JPEG", "file"), ("./c", "file")])
def test_check_member_accepts(name, kind):
    check_member(_info(name, kind), "arch.tar")


def _tar(members, gz=False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def test_iter_tar_files_streams_path_and_fileobj(tmp_path):
    data = _tar([(_info("d/", "dir"), b""), (_info("d/a"), b"AA"), (_info("b"), b"B")], gz=True)
    (tmp_path / "x.tar.gz").write_bytes(data)
    assert list(iter_tar_files(tmp_path / "x.tar.gz")) == [("d/a", b"AA"), ("b", b"B")]
    assert list(iter_tar_files(io.BytesIO(data), archive="mem")) == [("d/a", b"AA"), ("b", b"B")]


def test_iter_tar_files_stops_at_an_unsafe_member():
    data = _tar([(_info("ok"), b"1"), (_info("../evil"), b"2"), (_info("later"), b"3")])
    it = iter_tar_files(io.BytesIO(data), archive="mem.tar")
    assert next(it) == ("ok", b"1")
    with pytest.raises(UnsafeArchiveError, match="mem.tar"):
        next(it)


def test_atomic_outputs_get_the_usual_modes(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "g").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
