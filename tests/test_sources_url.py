"""URL downloads: file:// and a local HTTP server (127.0.0.1 only) with and without Range support."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import pytest
from sources_helpers import make_ilsvrc2012

from alexnet.config import DataConfig, TinyConfig
from alexnet.data.sources import download_raw, open_raw
from alexnet.data.sources.url import fetch
from alexnet.errors import PipelineError
from alexnet.fileio import ChecksumError

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # several chunks
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    ranges = True  # set per server: whether Range requests are honoured
    drop_after: int | None = None  # close the connection after this many bytes of the file
    seen: list

    def do_GET(self):  # noqa: N802
        self.seen.append(self.headers.get("Range"))
        if self.path != "/file.bin":
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        end = len(PAYLOAD) if self.drop_after is None or start >= self.drop_after else self.drop_after
        self.wfile.write(PAYLOAD[start:end])

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(params=[True, False], ids=["range", "no-range"])
def server(request):
    handler = type("H", (_Handler,), {"ranges": request.param, "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_http_fresh_download(tmp_path, server):
    base, handler = server
    assert fetch(f"{base}/file.bin", tmp_path / "f", md5=MD5, progress=False, timeout=10) == MD5
    assert (tmp_path / "f").read_bytes() == PAYLOAD and not (tmp_path / "f.part").exists()
    assert handler.seen == [None]


def test_http_interrupted_transfer_resumes_on_the_next_run(tmp_path, server):
    base, handler = server
    if not handler.ranges:
        pytest.skip("resuming needs Range support")
    handler.drop_after = 1_500_000  # the connection dies mid-file on the first attempt
    with pytest.raises(PipelineError, match="run again to resume"):
        fetch(f"{base}/file.bin", tmp_path / "f", md5=MD5, progress=False, timeout=10)
    assert (tmp_path / "f.part").stat().st_size == 1_500_000 and not (tmp_path / "f").exists()
    assert fetch(f"{base}/file.bin", tmp_path / "f", md5=MD5, progress=False, timeout=10) == MD5
    assert (tmp_path / "f").read_bytes() == PAYLOAD
    assert handler.seen == [None, "bytes=1500000-"]


def test_http_resume_uses_range_or_restarts(tmp_path, server):
    base, handler = server
    half = len(PAYLOAD) // 2
    (tmp_path / "f.part").write_bytes(PAYLOAD[:half])
    assert fetch(f"{base}/file.bin", tmp_path / "f", md5=MD5, progress=False, timeout=10) == MD5
    assert (tmp_path / "f").read_bytes() == PAYLOAD
    assert handler.seen == [f"bytes={half}-"]  # asked only for the rest, either way


def test_http_resume_appends_rather_than_restarting(tmp_path, server):
    """A partial of other bytes proves the server's answer decides: 206 appends, 200 starts over."""
    base, handler = server
    (tmp_path / "f.part").write_bytes(b"x" * 1000)
    got = fetch(f"{base}/file.bin", tmp_path / "f", progress=False, timeout=10)
    data = (tmp_path / "f").read_bytes()
    if handler.ranges:
        assert data == b"x" * 1000 + PAYLOAD[1000:]
    else:
        assert data == PAYLOAD
    assert got == hashlib.md5(data).hexdigest()


def test_http_checksum_mismatch_removes_the_partial(tmp_path, server):
    base, _ = server
    with pytest.raises(ChecksumError, match="does not match"):
        fetch(f"{base}/file.bin", tmp_path / "f", md5="0" * 32, progress=False, timeout=10)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()


def test_http_errors_are_clear(tmp_path, server):
    base, _ = server
    with pytest.raises(PipelineError, match="404"):
        fetch(f"{base}/missing.bin", tmp_path / "f", progress=False, timeout=10)


def test_file_url_and_resume(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    (tmp_path / "f.part").write_bytes(PAYLOAD[:5000])
    assert fetch(src.as_uri(), tmp_path / "f", md5=MD5, progress=False) == MD5
    assert (tmp_path / "f").read_bytes() == PAYLOAD
    with pytest.raises(PipelineError, match="no such file"):
        fetch((tmp_path / "nope").as_uri(), tmp_path / "g", progress=False)
    with pytest.raises(PipelineError, match="only http"):
        fetch("ftp://example.org/x", tmp_path / "g", progress=False)


def test_download_stage_from_urls(tmp_path):
    files = make_ilsvrc2012(tmp_path / "mirror")
    urls = {p.name: p.as_uri() for p in files.values()}
    out = tmp_path / "data" / "raw"
    m = download_raw(DataConfig(source="url", urls=urls, verify_md5=False), TinyConfig(), out, progress=False)
    assert m["layout"] == "ilsvrc2012" and m["files"]["train"] == "ILSVRC2012_img_train.tar"
    for role, p in files.items():
        assert (out / m["files"][role]).read_bytes() == p.read_bytes()
    assert len(list(open_raw(out).iter_split("train"))) == 6
    # Published MD5s are checked by default: these are not the real files.
    with pytest.raises(ChecksumError):
        download_raw(DataConfig(source="url", urls=urls), TinyConfig(), tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()


def test_download_stage_keeps_finished_files_when_another_fails(tmp_path):
    files = make_ilsvrc2012(tmp_path / "mirror")
    urls = {p.name: p.as_uri() for p in files.values()}
    urls["ILSVRC2012_img_val.tar"] = (tmp_path / "mirror" / "gone.tar").as_uri()
    out = tmp_path / "data" / "raw"
    with pytest.raises(PipelineError, match="gone.tar"):
        download_raw(DataConfig(source="url", urls=urls, verify_md5=False), TinyConfig(), out, progress=False)
    kept = tmp_path / "data" / ".raw.downloads"
    assert (kept / "ILSVRC2012_img_train.tar").read_bytes() == files["train"].read_bytes()
    assert not out.exists()
    files["train"].unlink()  # the rerun must not need it again
    urls["ILSVRC2012_img_val.tar"] = files["val"].as_uri()
    download_raw(DataConfig(source="url", urls=urls, verify_md5=False), TinyConfig(), out, progress=False)
    assert len(list(open_raw(out).iter_split("train"))) == 6 and not kept.exists()


def test_download_stage_url_names_must_match_the_layout(tmp_path):
    with pytest.raises(PipelineError, match="ILSVRC2012_devkit_t12.tar.gz"):
        download_raw(DataConfig(source="url", urls={"ILSVRC2012_img_train.tar": "file:///x"}), TinyConfig(),
                     tmp_path / "raw", progress=False)
