"""Pull (content-import sync) into a destination whose content backend is a real Pulp (instance 2),
from a local-backend source's stream served by a real uvicorn: each package file goes into Pulp as
soon as its sha256 is checked (never the whole bundle on disk), then the same import service makes
the versions and checks their digests. Full, then incremental (only the new package travels), twice
a no-op, a flipped byte refused with nothing changed in Pulp's repositories or the iss catalog."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.pull import StreamClient
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BundleIntegrityError
from iss_plugin.services import catalog, pulling
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, add_subscriber, pins, publish, versions
from tests.integration.pulp.support import new_prefix, purge, require_instance
from tests.web.test_bus_over_http import Served

pytestmark = pytest.mark.pulp


class Watched(httpx.SyncByteStream):
    """The response body as it arrives: kept (to read the tar), a byte flipped at `flip_at`, and at
    every chunk the .rpm files lying in the destination's work directory counted."""

    def __init__(self, inner: httpx.SyncByteStream, proxy: Proxy) -> None:
        self.inner, self.proxy = inner, proxy

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        for chunk in self.inner:
            at = self.proxy.flip_at
            if at is not None and offset <= at < offset + len(chunk):
                i = at - offset
                chunk = chunk[:i] + bytes([chunk[i] ^ 0x01]) + chunk[i + 1 :]
            offset += len(chunk)
            self.proxy.body += chunk
            rpms = [p.stat().st_size for p in self.proxy.work_dir.rglob("*.rpm") if p.is_file()]
            self.proxy.peak_rpm_files = max(self.proxy.peak_rpm_files, len(rpms))
            self.proxy.peak_rpm_bytes = max(self.proxy.peak_rpm_bytes, sum(rpms))
            yield chunk

    def close(self) -> None:
        self.inner.close()


class Proxy(httpx.BaseTransport):
    def __init__(self, work_dir: Path, flip_at: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.work_dir, self.flip_at = work_dir, flip_at
        self.requests: list[httpx.Request] = []
        self.body = b""
        self.peak_rpm_files = 0
        self.peak_rpm_bytes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if response.status_code != 200:
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, stream=Watched(response.stream, self))

    def rpms(self) -> dict[str, tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.body)) as tar:
            return {m.name: m for m in tar if m.name.endswith(".rpm")}


@pytest.fixture
def unique_rpms(monkeypatch):
    """The demo source's packages, named for this run: Pulp keeps what earlier runs left (as
    orphans) and a receiver does not send a package Pulp holds, so they must be new to it."""
    from iss_plugin.adapters import fixtures

    real, run = fixtures.build_rpms, uuid.uuid4().hex[:8]

    def build(directory, count, prefix="pkg", *args, **kwargs):
        return real(directory, count, f"{prefix}-{run}-", *args, **kwargs)

    monkeypatch.setattr(fixtures, "build_rpms", build)
    return run


@pytest.fixture
def pulp_pair(tmp_path, request, unique_rpms):
    """(source, destination, url); request.param: (packages per repository, the destination's stream_batch)."""
    per_repo, stream_batch = request.param
    inst = require_instance(2)
    prefix = new_prefix()
    port = closed_port()
    src = make_server(tmp_path, "source")
    pulp = inst.settings(prefix).pulp.model_dump() | {"stream_batch": stream_batch}
    dst = make_server(tmp_path, "destination", backend="pulp", pulp=pulp)
    prepare_source(src, tmp_path / "rpms", per_repo, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    add_subscriber(src, dst, tmp_path)
    publish(src)
    try:
        with Served(src, port):
            yield src, dst, f"http://127.0.0.1:{port}"
    finally:
        purge(inst.backend(repo_prefix=prefix))
        src.close()
        dst.close()


def pull(dst, url: str, proxy: Proxy):
    with StreamClient(url, dst.signer, dst.server_id, transport=proxy) as client:
        return pulling.pull_content_view(
            dst.uow(),
            pulling.PullRequest(ORG, "base"),
            open_stream=client.open,
            work_dir=dst.settings.imports_path,
            display=f"the stream from {url}",
            actor=ACTOR,
        )


def pulp_state(dst) -> dict[str, list[tuple[int, int, str]]]:
    """Every repository Pulp holds for the destination (under its prefix): its versions' numbers,
    package counts and digests."""
    with dst.uow() as uow:
        backend = uow.backend
        return {
            key: [(v.number, v.package_count, v.digest) for v in backend.list_versions(key)]
            for key in sorted(backend.list_repositories())
        }


def incoming_packages(dst, key: str) -> dict[str, str]:
    """The packages of a repository's #incoming repository (never in the catalog)."""
    with dst.uow() as uow:
        backend = uow.backend
        r = backend._find_repo(backend.incoming_name(key))
        return backend._version_set(r["latest_version_href"]) if r else {}


@pytest.mark.parametrize("pulp_pair", [(3, 2)], indirect=True, ids=["batches-of-2"])
def test_pull_into_pulp_full_then_only_the_new_package_twice_a_no_op(pulp_pair, tmp_path):
    src, dst, url = pulp_pair
    work_dir = Path(dst.settings.imports_path)
    proxy = Proxy(work_dir)
    first = pull(dst, url, proxy)
    assert first["state"] == "imported" and first["base"] is None and versions(dst) == ["1.0"]
    assert pins(dst, "1.0") == pins(src, "1.0")  # the same package sets, checked against Pulp's versions
    sent = proxy.rpms()
    assert len(sent) == 12  # four repositories of three packages
    # a batch on its way into Pulp, the next one gathering and the file being written, never the bundle
    assert 1 <= proxy.peak_rpm_files <= 2 * 2 + 1
    assert proxy.peak_rpm_bytes <= 5 * max(m.size for m in sent.values())
    assert not list(work_dir.rglob("*.rpm"))  # and nothing is left behind
    state = pulp_state(dst)
    for (product, repo), (count, digest) in pins(src, "1.0").items():
        assert state[f"{ORG}/{product}/{repo}"][-1][1:] == (count, digest)
        assert len(incoming_packages(dst, f"{ORG}/{product}/{repo}")) == 3  # a batch of two synced, one uploaded

    again = Proxy(work_dir)
    assert pull(dst, url, again)["state"] == "already_imported" and versions(dst) == ["1.0"]
    assert len(again.requests) == 1 and again.body == b""  # asked with base=1.0; the source answered 204
    assert pulp_state(dst) == state

    late = build_rpms(tmp_path / "late", 1, prefix=f"late-{uuid.uuid4().hex[:8]}-")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
    publish(src)
    incremental = Proxy(work_dir)
    second = pull(dst, url, incremental)
    assert second["state"] == "imported" and second["base"] == "1.0" and versions(dst) == ["1.0", "2.0"]
    assert second["imported"] and second["imported"]["kind"] == "incremental"
    assert [Path(n).name for n in incremental.rpms()] == [late[0].name]  # only the new package travelled
    assert pins(dst, "2.0") == pins(src, "2.0")
    after = pulp_state(dst)
    utils = f"{ORG}/{CUSTOM_PRODUCT}/utils"
    assert after[utils][-1][1] == state[utils][-1][1] + 1
    assert {k: v for k, v in after.items() if k != utils} == {k: v for k, v in state.items() if k != utils}

    assert pull(dst, url, Proxy(work_dir))["state"] == "already_imported"
    assert pulp_state(dst) == after and versions(dst) == ["1.0", "2.0"]


@pytest.mark.parametrize("pulp_pair", [(25, 10)], indirect=True, ids=["batches-of-10"])
def test_a_flipped_byte_in_a_streamed_package_is_refused_and_pulp_shows_nothing_new(pulp_pair, tmp_path):
    src, dst, url = pulp_pair
    work_dir = Path(dst.settings.imports_path)
    whole = Proxy(work_dir)
    with StreamClient(url, dst.signer, dst.server_id, transport=whole) as client:
        body = client.open({"organization": ORG, "content_view": "base"})
        assert body is not None
        body.read()
    last = max(whole.rpms().values(), key=lambda m: m.offset_data)
    with pytest.raises(BundleIntegrityError, match="altered in transit"):  # the first pull: batches went in
        pull(dst, url, Proxy(work_dir, flip_at=last.offset_data + 7))
    assert versions(dst) == [] and pulp_state(dst) == {}  # not even an empty repository was made

    assert pull(dst, url, Proxy(work_dir))["state"] == "imported"
    assert pins(dst, "1.0") == pins(src, "1.0")
    before = pulp_state(dst)
    # packages Pulp never saw (it keeps what earlier runs left as orphans, and would not take them again)
    late = build_rpms(tmp_path / "late", 22, prefix=f"late-{uuid.uuid4().hex[:8]}")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
    publish(src)

    clean = Proxy(work_dir)  # where the second package's bytes lie in the stream (deterministic)
    with StreamClient(url, dst.signer, dst.server_id, transport=clean) as client:
        body = client.open({"organization": ORG, "content_view": "base", "base": "1.0"})
        assert body is not None
        body.read()
    last = max(clean.rpms().values(), key=lambda m: m.offset_data)
    flipped = Proxy(work_dir, flip_at=last.offset_data + last.size // 2)
    with pytest.raises(BundleIntegrityError, match="altered in transit") as refused:
        pull(dst, url, flipped)
    assert Path(last.name).name in refused.value.message
    # a batch of ten (or two: the second races the refusal) went into utils' #incoming before the
    # flipped package arrived; no repository got a new version, the catalog is unchanged
    assert versions(dst) == ["1.0"] and pulp_state(dst) == before
    assert len(incoming_packages(dst, f"{ORG}/{CUSTOM_PRODUCT}/utils")) in (10, 20)
    assert not list(work_dir.rglob("*.rpm"))

    assert pull(dst, url, Proxy(work_dir))["state"] == "imported"  # the same pull, unharmed, goes through
    assert versions(dst) == ["1.0", "2.0"] and pins(dst, "2.0") == pins(src, "2.0")


@pytest.mark.parametrize("pulp_pair", [(3, 100)], indirect=True, ids=["cli"])
def test_iss_content_import_sync_into_pulp_through_the_cli(pulp_pair, tmp_path):
    import json

    from click.testing import CliRunner

    from iss_plugin.adapters.backends.pulp_instances import settings_toml
    from iss_plugin.cli.main import build_cli

    src, dst, url = pulp_pair
    config = tmp_path / "destination.toml"
    prefix = dst.settings.pulp.repo_prefix
    config.write_text(
        f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n'
        + settings_toml(require_instance(2), prefix)
    )

    def sync():
        args = ["--config", str(config), "--output", "json", "content-import", "sync", "--from", url]
        return CliRunner().invoke(build_cli(), [*args, "--organization", ORG, "--content-view", "base"])

    first = sync()
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["state"] == "imported" and versions(dst) == ["1.0"]
    assert pins(dst, "1.0") == pins(src, "1.0")
    assert not list(Path(dst.settings.imports_path).rglob("*.rpm"))
    again = sync()
    assert again.exit_code == 0 and json.loads(again.stdout)["state"] == "already_imported"


def test_a_bundle_pushed_to_a_pulp_destination_goes_into_pulp_package_by_package(tmp_path, unique_rpms):
    """Push (the source's export consumer streams to the destination's POST /api/v1/imports/push):
    the destination on Pulp takes it the same way as a pull."""
    from iss_plugin.services import subscriptions
    from tests.integration.propagation.conftest import CV, memory_bus, subscription, wait_until
    from tests.web.test_push import start_source

    inst = require_instance(2)
    prefix = new_prefix()
    port = closed_port()
    src = make_server(tmp_path, "source", bus=memory_bus())
    pulp = inst.settings(prefix).pulp.model_dump() | {"stream_batch": 2}
    dst = make_server(tmp_path, "destination", bus=memory_bus(), backend="pulp", pulp=pulp)
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    url = f"http://127.0.0.1:{port}"
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
    subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
    runtimes: list = []
    try:
        with Served(dst, port):
            start_source(src, runtimes)
            publish(src)
            wait_until(lambda: subscription(src).acknowledged == "1.0", 120, "1.0 acknowledged on the source")
        assert versions(dst) == ["1.0"] and pins(dst, "1.0") == pins(src, "1.0")
        assert not list(Path(dst.settings.imports_path).rglob("*.rpm"))
        state = pulp_state(dst)
        for (product, repo), (count, digest) in pins(src, "1.0").items():
            assert state[f"{ORG}/{product}/{repo}"][-1][1:] == (count, digest)
            # went through #incoming (a batch of two synced, the last one uploaded), not from a bundle on disk
            assert len(incoming_packages(dst, f"{ORG}/{product}/{repo}")) == 3
    finally:
        for r in runtimes:
            r.shutdown()
        purge(inst.backend(repo_prefix=prefix))
        src.close()
        dst.close()
