"""Pull (content-import sync) from a source's stream served by a real uvicorn on a free loopback
port, with faults injected between the two (an httpx transport that cuts or flips bytes): nothing of
a refused or broken stream reaches the destination's store or catalog."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.pull import StreamClient
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BundleIntegrityError, NotAuthenticated, TransientError
from iss_plugin.services import catalog, pulling
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, add_subscriber, publish, versions
from tests.web.test_bus_over_http import Served


class Fault(httpx.SyncByteStream):
    """The response body with one fault at byte `at`: a flipped bit, or the connection cut."""

    def __init__(self, inner: httpx.SyncByteStream, kind: str, at: int) -> None:
        self.inner, self.kind, self.at = inner, kind, at

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        for chunk in self.inner:
            end = offset + len(chunk)
            if offset <= self.at < end:
                if self.kind == "cut":
                    yield chunk[: self.at - offset]
                    raise httpx.ReadError("connection reset (test)")
                i = self.at - offset
                chunk = chunk[:i] + bytes([chunk[i] ^ 0x01]) + chunk[i + 1 :]
            offset = end
            yield chunk

    def close(self) -> None:
        self.inner.close()


class Proxy(httpx.BaseTransport):
    """Between the destination and the source: faults on the first `times` responses."""

    def __init__(self, kind: str | None = None, at: int = 0, times: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.kind, self.at, self.times = kind, at, times
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if self.kind is None or len(self.requests) > self.times or response.status_code not in (200, 206):
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code, headers=response.headers, stream=Fault(response.stream, self.kind, self.at)
        )


@pytest.fixture
def served(tmp_path):
    port = closed_port()
    src = make_server(tmp_path, "source")
    dst = make_server(tmp_path, "destination")
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    add_subscriber(src, dst, tmp_path)
    publish(src)
    try:
        with Served(src, port):
            yield src, dst, f"http://127.0.0.1:{port}"
    finally:
        src.close()
        dst.close()


def pull(dst, url: str, proxy: Proxy | None = None, signer: Signer | None = None, server_id: str | None = None):
    with StreamClient(url, signer or dst.signer, server_id or dst.server_id, transport=proxy) as client:
        return pulling.pull_content_view(
            dst.uow(),
            pulling.PullRequest(ORG, "base"),
            open_stream=client.open,
            work_dir=dst.settings.imports_path,
            display=f"the stream from {url}",
            actor=ACTOR,
        )


def files_of(app) -> set[str]:
    """Every file of the server's data directory but its database (store, imports, staging)."""
    root = Path(app.settings.data_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".db" not in p.name}


def middle_of_first_package(dst, url: str) -> int:
    with StreamClient(url, dst.signer, dst.server_id) as client:
        body = client.open({"organization": ORG, "content_view": "base"})
        assert body is not None
        data = body.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        rpm = next(m for m in tar if m.name.endswith(".rpm"))
    return rpm.offset_data + rpm.size // 2


def test_a_destination_pulls_the_version_then_only_what_it_lacks_and_a_second_pull_is_a_no_op(served, tmp_path):
    src, dst, url = served
    first = pull(dst, url)
    assert first["state"] == "imported" and first["base"] is None and versions(dst) == ["1.0"]
    proxy = Proxy()
    again = pull(dst, url, proxy)
    assert again["state"] == "already_imported" and versions(dst) == ["1.0"]
    assert len(proxy.requests) == 1  # asked with base=1.0; the source answered 204

    extra = build_rpms(tmp_path / "extra", 1, prefix="late-pkg")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", extra, ACTOR, src.server_id)
    publish(src)
    proxy = Proxy()
    second = pull(dst, url, proxy)
    assert second["state"] == "imported" and second["base"] == "1.0" and versions(dst) == ["1.0", "2.0"]
    assert "base=1.0" in str(proxy.requests[0].url)
    assert second["imported"] and second["imported"]["kind"] == "incremental"


def test_a_stream_cut_mid_package_leaves_nothing_in_the_store_or_the_catalog(served):
    _src, dst, url = served
    at = middle_of_first_package(dst, url)
    before = files_of(dst)
    with pytest.raises(TransientError, match="broke"):
        pull(dst, url, Proxy("cut", at, times=99))  # every resume is cut too
    assert versions(dst) == [] and files_of(dst) == before


def test_an_interrupted_stream_resumes_with_a_range_request(served):
    _src, dst, url = served
    at = middle_of_first_package(dst, url)
    proxy = Proxy("cut", at, times=1)
    assert pull(dst, url, proxy)["state"] == "imported" and versions(dst) == ["1.0"]
    assert len(proxy.requests) == 2
    assert proxy.requests[1].headers["range"] == f"bytes={at}-"
    assert proxy.requests[1].headers["if-range"]


@pytest.mark.parametrize("where", ["package", "manifest"])
def test_flipped_bytes_are_refused_with_a_reason_and_nothing_changes(served, where):
    _src, dst, url = served
    at = middle_of_first_package(dst, url) if where == "package" else 512 + 40  # inside manifest.json
    before = files_of(dst)
    expected = (
        (BundleIntegrityError, "altered in transit")
        if where == "package"
        else (BundleIntegrityError, "changed after it was signed")
    )
    with pytest.raises(expected[0], match=expected[1]):
        pull(dst, url, Proxy("flip", at))
    assert versions(dst) == [] and files_of(dst) == before


def test_a_wrong_or_unknown_key_gets_no_data(served):
    _src, dst, url = served
    before = files_of(dst)
    with pytest.raises(NotAuthenticated, match="401"):
        pull(dst, url, signer=Signer.generate())
    with pytest.raises(NotAuthenticated, match="401"):
        pull(dst, url, server_id="stranger")
    assert versions(dst) == [] and files_of(dst) == before


def test_iss_content_import_sync_through_the_cli(served, tmp_path):
    import json

    from click.testing import CliRunner

    from iss_plugin.cli.main import build_cli

    _src, dst, url = served
    config = tmp_path / "destination.toml"
    config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')

    def sync(*extra: str):
        args = ["--config", str(config), "--output", "json", "content-import", "sync", "--from", url]
        args += ["--organization", ORG, "--content-view", "base", *extra]
        return CliRunner().invoke(build_cli(), args, catch_exceptions=False)

    first = sync("--version", "1.0")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["state"] == "imported" and versions(dst) == ["1.0"]
    again = sync("--version", "1.0")
    assert again.exit_code == 0 and json.loads(again.stdout)["state"] == "already_imported"
    nowhere = CliRunner().invoke(
        build_cli(),
        [
            "--config",
            str(config),
            "content-import",
            "sync",
            "--from",
            f"http://127.0.0.1:{closed_port()}",
            "--organization",
            ORG,
            "--content-view",
            "base",
            "--version",
            "2.0",
        ],
        catch_exceptions=False,
    )
    assert nowhere.exit_code != 0 and "cannot reach" in nowhere.output and versions(dst) == ["1.0"]


def test_iss_content_import_sync_says_destination_error_when_this_servers_backend_fails(served, tmp_path):
    """The same reason as the answer a source would get: debris where the local backend publishes
    a repository fails the import (BackendError); the JSON names the error and destination_error,
    exit 1, nothing imported."""
    import json

    from click.testing import CliRunner

    from iss_plugin.cli.main import build_cli

    _src, dst, url = served
    (dst.settings.published_path / ORG / CUSTOM_PRODUCT / "utils").mkdir(parents=True)
    config = tmp_path / "destination.toml"
    config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')
    args = ["--config", str(config), "--output", "json", "content-import", "sync", "--from", url]
    failed = CliRunner().invoke(build_cli(), [*args, "--organization", ORG, "--content-view", "base"])
    assert failed.exit_code == 1, failed.output
    error = json.loads(failed.stdout)
    assert (error["error"], error["reason"]) == ("BackendError", "destination_error")
    assert "not a publication made by iss" in error["message"]
    assert versions(dst) == []
