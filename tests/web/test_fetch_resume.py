"""A destination's download that loses its connection resumes with a range request (If-Range: the
ETag) instead of starting over; a server without ranges, or whose archive changed, sends it whole."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iss_plugin.adapters.bundles.fetch import fetch_bundle
from iss_plugin.domain.errors import TransientError

ARCHIVE = bytes(range(256)) * 4000  # ~1 MB
ETAG = f'"{hashlib.sha256(ARCHIVE).hexdigest()}"'


class Flaky(BaseHTTPRequestHandler):
    """Breaks the first `breaks` responses half-way; honours Range when `ranges`."""

    breaks = 1
    ranges = True
    requests: list[dict] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append(dict(self.headers))
        start = 0
        wanted = self.headers.get("Range")
        if self.ranges and wanted and self.headers.get("If-Range") == ETAG:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
        body = ARCHIVE[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Disposition", 'attachment; filename="b.tar.gz"')
        if self.ranges:
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", ETAG)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(ARCHIVE) - 1}/{len(ARCHIVE)}")
        self.end_headers()
        if type(self).breaks > 0:
            type(self).breaks -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def flaky() -> Iterator[tuple[str, type[Flaky]]]:
    handler = type("Handler", (Flaky,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/bundles/x/download", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_broken_download_resumes_where_it_stopped(flaky, tmp_path):
    url, handler = flaky
    got = fetch_bundle(url, tmp_path / "in", len(ARCHIVE), sha256=hashlib.sha256(ARCHIVE).hexdigest())
    assert got.name == "b.tar.gz" and got.read_bytes() == ARCHIVE
    assert [r.get("Range") for r in handler.requests] == [None, f"bytes={len(ARCHIVE) // 2}-"]
    assert handler.requests[1]["If-Range"] == ETAG


def test_without_ranges_a_broken_download_is_retried_by_the_bus(flaky, tmp_path):
    url, handler = flaky
    handler.ranges = False
    with pytest.raises(TransientError):
        fetch_bundle(url, tmp_path / "in", len(ARCHIVE))
    assert len(handler.requests) == 1


def test_too_many_breaks_give_up(flaky, tmp_path):
    url, handler = flaky
    handler.breaks = 10
    with pytest.raises(TransientError):
        fetch_bundle(url, tmp_path / "in", len(ARCHIVE))
    assert len(handler.requests) == 4
