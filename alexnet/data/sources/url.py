"""Downloads from a user's mirror (http, https, file URLs): resumable, with progress and MD5.

Owns fetching one URL to a local file. A partial download is kept as `<dest>.part` beside the
destination; the next attempt asks the server for the rest with an HTTP Range request (a file://
URL is read from the same offset) and appends, so a dropped 140 GB transfer does not start over.
A server that ignores Range (answers 200) gets a clean restart. The finished file is renamed
onto `dest` only after its MD5 matches (when one is expected); a mismatch removes the partial
so the next run starts fresh, and raises ChecksumError.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from alexnet.errors import PipelineError
from alexnet.fileio import ChecksumError, hash_file

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _md5_of(path: Path):  # noqa: ANN202  (a hashlib object)
    return hash_file(path, hashlib.md5(), CHUNK) if path.exists() else hashlib.md5()


def _copy(src, dst, h, bar) -> None:  # noqa: ANN001  (file objects)
    while block := src.read(CHUNK):
        dst.write(block)
        h.update(block)
        bar.update(len(block))


def _fetch_file_url(url: str, part: Path, h, progress: bool):  # noqa: ANN001, ANN202
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not src.is_file():
        raise PipelineError(f"{url}: no such file {src}")
    size = src.stat().st_size
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:  # the partial is not a prefix of this file
        part.unlink()
        h, offset = hashlib.md5(), 0
    with src.open("rb") as s, part.open("ab") as d, tqdm(total=size, initial=offset, unit="B", unit_scale=True,
                                                          desc=f"copy {src.name}", disable=not progress) as bar:
        s.seek(offset)
        _copy(s, d, h, bar)
    return h


def _fetch_http(url: str, part: Path, h, progress: bool, timeout: float):  # noqa: ANN001, ANN202
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # range not satisfiable: the partial may already be whole
            return h
        raise PipelineError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise PipelineError(f"{url}: {getattr(e, 'reason', e)}") from e
    with resp:
        total = None
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise PipelineError(f"{url}: the server answered the range request with "
                                    f"{resp.headers.get('Content-Range')!r}, not bytes {offset}-")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:  # 200: the server sends the whole file; start over
            h, offset = hashlib.md5(), 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            mode = "wb"
        with part.open(mode) as d, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                        desc=f"download {part.name.removesuffix('.part')}",
                                        disable=not progress) as bar:
            try:
                _copy(resp, d, h, bar)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                d.flush()
                raise PipelineError(f"{url}: transfer interrupted after {part.stat().st_size} bytes ({e!r}); "
                                    "run again to resume") from e
        if total is not None and part.stat().st_size != total:
            raise PipelineError(f"{url}: got {part.stat().st_size} of {total} bytes; run again to resume")
    return h


def fetch(url: str, dest: str | Path, md5: str | None = None, progress: bool = True,
          timeout: float = 60.0) -> str:
    """Download `url` to `dest` (resuming `<dest>.part`), verify `md5` if given; return the file's MD5."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("file", "http", "https"):
        raise PipelineError(f"{url}: only http, https and file URLs are supported")
    h = _md5_of(part)  # the bytes already there count toward the checksum, read once
    if scheme == "file":
        h = _fetch_file_url(url, part, h, progress)
    else:
        h = _fetch_http(url, part, h, progress, timeout)
    actual = h.hexdigest()
    if md5 is not None and actual != md5.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: MD5 {actual} does not match the expected {md5} "
                            "(the partial download was removed; run again to fetch it afresh)")
    os.replace(part, dest)
    return actual

