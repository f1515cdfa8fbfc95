"""fetch_bundle: an announced bundle is copied (file://) or downloaded (http://) only when it is what
the announcement says, from where this server may fetch; every refusal is a clear error."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.fetch import fetch_bundle, file_sha256
from iss_plugin.domain.errors import BundleIntegrityError, RejectedInput, TransientError, UntrustedSource

PAYLOAD = b"not really a tarball, but bytes with a digest\n" * 1000


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "bundle.tar.gz").write_bytes(PAYLOAD)
    return root


@pytest.fixture
def http_root(served: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_a_file_bundle_under_the_roots_is_copied_with_its_bytes(served: Path, tmp_path: Path) -> None:
    got = fetch_bundle((served / "bundle.tar.gz").as_uri(), tmp_path / "in", len(PAYLOAD), (served,), sha256=SHA)
    assert got == tmp_path / "in" / "bundle.tar.gz"
    assert got.read_bytes() == PAYLOAD
    assert file_sha256(got) == SHA


@pytest.mark.parametrize(
    ("size", "sha256", "error", "needle"),
    [
        (len(PAYLOAD) + 1, None, BundleIntegrityError, "the announcement says"),
        (len(PAYLOAD), "0" * 64, BundleIntegrityError, "does not have the sha256"),
    ],
)
def test_a_file_bundle_that_is_not_the_announced_one_is_refused(
    served: Path, tmp_path: Path, size: int, sha256: str | None, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        fetch_bundle((served / "bundle.tar.gz").as_uri(), tmp_path / "in", size, (served,), sha256=sha256)


def test_a_file_bundle_outside_the_roots_is_refused(served: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(UntrustedSource, match="outside the directories this server fetches from"):
        fetch_bundle((served / "bundle.tar.gz").as_uri(), tmp_path / "in", None, (elsewhere,))
    assert list((tmp_path / "in").iterdir()) == []


@pytest.mark.parametrize(
    ("location", "error", "needle"),
    [
        ("ftp://example.com/bundle.tar.gz", RejectedInput, "neither file:// nor http"),
        ("file:relative/bundle.tar.gz", RejectedInput, "not an absolute file:// path"),
        ("file:///nonexistent/iss/bundle.tar.gz", TransientError, "is not there"),
    ],
)
def test_locations_it_cannot_fetch_are_refused(
    tmp_path: Path, location: str, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        fetch_bundle(location, tmp_path / "in", None)


def test_an_http_bundle_is_downloaded_and_checked(http_root: str, tmp_path: Path) -> None:
    got = fetch_bundle(f"{http_root}/bundle.tar.gz", tmp_path / "in", len(PAYLOAD), sha256=SHA)
    assert got.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("name", "size", "sha256", "error", "needle"),
    [
        ("bundle.tar.gz", len(PAYLOAD) - 1, None, BundleIntegrityError, "larger than the announced"),
        ("bundle.tar.gz", len(PAYLOAD) + 1, None, TransientError, "expected"),
        ("bundle.tar.gz", len(PAYLOAD), "0" * 64, BundleIntegrityError, "does not have the announced sha256"),
        ("missing.tar.gz", None, None, TransientError, "could not download"),
    ],
)
def test_an_http_bundle_that_is_not_the_announced_one_is_refused(
    http_root: str,
    tmp_path: Path,
    name: str,
    size: int | None,
    sha256: str | None,
    error: type[Exception],
    needle: str,
) -> None:
    with pytest.raises(error, match=needle):
        fetch_bundle(f"{http_root}/{name}", tmp_path / "in", size, sha256=sha256)
