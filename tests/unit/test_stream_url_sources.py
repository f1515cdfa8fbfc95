"""Stream entries whose source is an http(s) URL (a Pulp source's package files on its content app):
read as they are sent, the same tar bytes as from a file; a short, long or missing body aborts the
stream with an error naming the entry. A real HTTP server on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from iss_plugin.adapters.bundles.stream import RUN_SIZE, Entry, tar_stream, tar_stream_from
from iss_plugin.domain.errors import IssError

BIG = bytes(range(256)) * (3 * RUN_SIZE // 256 + 17)  # several runs, not a multiple of anything
SMALL = b"small file\n" * 50


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {"/big.rpm": BIG, "/small.rpm": SMALL}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _entries(tmp_path, url: str) -> tuple[list[Entry], list[Entry]]:
    (tmp_path / "big.rpm").write_bytes(BIG)
    (tmp_path / "small.rpm").write_bytes(SMALL)
    head = [Entry("manifest.json", 2, data=b"{}")]
    by_url = [
        *head,
        Entry("P/b/big.rpm", len(BIG), url + "/big.rpm"),
        Entry("P/s/small.rpm", len(SMALL), url + "/small.rpm"),
    ]
    by_file = [
        *head,
        Entry("P/b/big.rpm", len(BIG), str(tmp_path / "big.rpm")),
        Entry("P/s/small.rpm", len(SMALL), str(tmp_path / "small.rpm")),
    ]
    return by_url, by_file


def test_url_sources_give_the_same_tar_as_files_and_resume_identically(server, tmp_path):
    by_url, by_file = _entries(tmp_path, server)
    whole = b"".join(tar_stream(by_url))
    assert whole == b"".join(tar_stream(by_file))
    assert whole == b"".join(tar_stream(by_url))  # regenerated: the same bytes
    for first in (1000, len(whole) // 2, len(whole) - 700):
        assert b"".join(tar_stream_from(by_url, first)) == whole[first:]


@pytest.mark.parametrize(
    ("path", "size", "message"),
    [
        ("/missing.rpm", 10, "has 0 bytes, 10 expected"),
        ("/small.rpm", len(SMALL) + 5, "expected"),
        ("/big.rpm", len(BIG) - 1, f"has {len(BIG) - 2} bytes"),
    ],
    ids=["404", "short", "long"],
)
def test_a_url_source_of_the_wrong_size_aborts_the_stream(server, path, size, message):
    entries = [Entry("manifest.json", 2, data=b"{}"), Entry("P/x/x.rpm", size, server + path)]
    with pytest.raises(IssError, match=message) as e:
        b"".join(tar_stream(entries))
    assert "P/x/x.rpm" in e.value.message


def test_an_abandoned_stream_stops_the_downloads_it_started_ahead(server):
    import time

    entries = [Entry("manifest.json", 2, data=b"{}")]
    entries += [Entry(f"P/b/big-{i}.rpm", len(BIG), server + "/big.rpm") for i in range(10)]
    stream = tar_stream(entries)
    next(stream)
    next(stream)
    assert any(t.name == "iss-url-source" for t in threading.enumerate())  # downloading ahead
    stream.close()  # the client went away
    deadline = time.monotonic() + 10
    while any(t.name == "iss-url-source" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "iss-url-source" for t in threading.enumerate())
