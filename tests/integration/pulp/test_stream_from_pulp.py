"""A source whose content backend is a real Pulp (instance 1) streams bundles (issue 12): behind a
real uvicorn `iss serve`, a local-backend destination pulls with `iss content-import sync --from URL`.
The repodata comes from the version's publication (downloaded once into the source's store cache),
the package files are read from Pulp's content app as they are sent. Full, then incremental
(only the new package travels), twice a no-op; the stream is byte-identical when generated twice
and a range request resumes it identically."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.pull import STREAM_PATH, StreamClient
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.services import catalog
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, add_subscriber, pins, publish, versions
from tests.integration.pulp.support import new_prefix, purge, require_instance
from tests.web.test_bus_over_http import Served

pytestmark = pytest.mark.pulp


@pytest.fixture
def pulp_source(tmp_path):
    """(source on Pulp instance 1, local destination, the source's URL)."""
    inst = require_instance(1)
    prefix = new_prefix()
    port = closed_port()
    run = uuid.uuid4().hex[:8]
    src = make_server(tmp_path, "source", backend="pulp", pulp=inst.settings(prefix).pulp.model_dump())
    dst = make_server(tmp_path, "destination")
    prepare_source(src, tmp_path / f"rpms-{run}", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    add_subscriber(src, dst, tmp_path)
    publish(src)
    backend = inst.backend(repo_prefix=prefix)
    try:
        with Served(src, port):
            yield src, dst, f"http://127.0.0.1:{port}"
    finally:
        purge(backend)
        src.close()
        dst.close()


def _sync(dst, url: str, config: Path):
    config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')
    args = ["--config", str(config), "--output", "json", "content-import", "sync", "--from", url]
    from iss_plugin.cli.main import build_cli

    return CliRunner().invoke(build_cli(), [*args, "--organization", ORG, "--content-view", "base"])


def _stream(dst, url: str, params: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    from urllib.parse import urlencode

    with StreamClient(url, dst.signer, dst.server_id) as client:
        response = client.request(f"{STREAM_PATH}?{urlencode(params)}", headers or {})
        try:
            return response.status_code, response.read(), response.headers.get("etag", "")
        finally:
            response.close()


def _rpms(body: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return sorted(Path(m.name).name for m in tar if m.name.endswith(".rpm"))


def test_a_pulp_source_streams_full_then_incremental_then_nothing(pulp_source, tmp_path):
    src, dst, url = pulp_source
    config = tmp_path / "destination.toml"
    started = time.monotonic()
    first = _sync(dst, url, config)
    full_seconds = time.monotonic() - started
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["state"] == "imported" and versions(dst) == ["1.0"]
    assert pins(dst, "1.0") == pins(src, "1.0")  # the package sets Pulp holds, on the local store

    # the stream is deterministic: twice the same bytes, and a range of it resumes identically
    params = {"organization": ORG, "content_view": "base"}
    status, whole, etag = _stream(dst, url, params)
    assert status == 200 and len(_rpms(whole)) == 12  # four repositories of three packages
    assert _stream(dst, url, params)[1] == whole
    cut = len(whole) * 2 // 3
    status, tail, _ = _stream(dst, url, params, {"Range": f"bytes={cut}-", "If-Range": etag})
    assert status == 206 and whole[:cut] + tail == whole
    # the repodata is cached in the source's store, not beside it
    cache = Path(src.settings.data_dir) / "store" / "pulp-cache" / "repodata"
    assert any(p.is_file() for p in cache.rglob("*"))

    again = _sync(dst, url, config)
    assert again.exit_code == 0 and json.loads(again.stdout)["state"] == "already_imported"

    late = build_rpms(tmp_path / "late", 1, prefix=f"late-{uuid.uuid4().hex[:8]}-")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
    publish(src)
    status, incremental, _ = _stream(dst, url, {**params, "base": "1.0"})
    assert status == 200 and _rpms(incremental) == [late[0].name]  # only the new package travels
    started = time.monotonic()
    second = _sync(dst, url, config)
    incremental_seconds = time.monotonic() - started
    assert second.exit_code == 0, second.output
    result = json.loads(second.stdout)
    assert result["state"] == "imported" and result["base"] == "1.0" and versions(dst) == ["1.0", "2.0"]
    assert pins(dst, "2.0") == pins(src, "2.0")
    for _ in range(2):
        nothing = _sync(dst, url, config)
        assert nothing.exit_code == 0 and json.loads(nothing.stdout)["state"] == "already_imported"
    assert versions(dst) == ["1.0", "2.0"]
    print(f"pulp source: full pull {full_seconds:.1f} s, incremental pull {incremental_seconds:.1f} s")


def test_the_stream_distributions_answer_only_iss_and_gc_removes_them(pulp_source, tmp_path):
    """The packages a stream reads from Pulp's content app are behind a header content guard: a
    request without iss's header gets 403. `iss store gc` deletes stream distributions older than
    its minimum age; the next stream of the version makes its distribution again."""
    import httpx

    from iss_plugin.adapters.backends.pulp.stream_export import STREAM_GUARD_HEADER, STREAM_PREFIX
    from iss_plugin.adapters.bundles.stream import headers_for

    src, dst, url = pulp_source
    params = {"organization": ORG, "content_view": "base"}
    status, whole, _ = _stream(dst, url, params)
    assert status == 200
    with src.uow() as uow:
        backend = uow.backend  # its Pulp client outlives the unit of work
    repositories = tuple(backend._repo(key)["pulp_href"] for key in backend.list_repositories())
    ours = [
        d
        for d in backend.pulp.list("distributions_rpm_rpm_list", "", {"name__startswith": STREAM_PREFIX})
        if d.get("publication") and _version_of(backend, d["publication"]).startswith(repositories)
    ]
    assert len(ours) == 4  # one per repository of the view's version
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        member = next(m.name for m in tar if m.name.endswith(".rpm"))
    location = member[member.index("Packages/") :]  # the stream reads base_url + the package's location
    package = next(
        d["base_url"] + location
        for d in ours
        if any(p["location_href"] == Path(location).name for p in _packages_of(backend, d["publication"]))
    )
    assert httpx.get(package).status_code == 403  # anyone else: refused
    assert httpx.get(package, headers={STREAM_GUARD_HEADER: "guess"}).status_code == 403
    assert set(headers_for(package)) == {STREAM_GUARD_HEADER}
    assert httpx.get(package, headers=headers_for(package)).status_code == 200

    def left() -> list[bool]:
        return [backend.pulp.first("distributions_rpm_rpm_list", "", {"name": d["name"]}) is not None for d in ours]

    backend.remove_stream_distributions(3600)
    assert all(left())  # younger than the minimum age: kept
    time.sleep(1)
    assert backend.remove_stream_distributions(0.5) >= 4  # CI runs tests one at a time: no stream was using one
    assert not any(left())
    status, again, _ = _stream(dst, url, params)  # made again, at the same place
    assert status == 200 and again == whole
    assert all(left())


def _version_of(backend, publication: str) -> str:
    return str(
        backend.pulp.call(
            "publications_rpm_rpm_read", "a publication", parameters={"rpm_rpm_publication_href": publication}
        )["repository_version"]
    )


def _packages_of(backend, publication: str) -> list[dict]:
    version = _version_of(backend, publication)
    return list(backend.pulp.list("content_rpm_packages_list", "packages", {"repository_version": version}))


def test_a_pulp_source_pushes_to_an_online_destination(tmp_path):
    """Push (the source's export consumer streams to the destination's POST /api/v1/imports/push)
    from a source on Pulp to a local-backend destination online."""
    from iss_plugin.services import subscriptions
    from tests.integration.propagation.conftest import CV, memory_bus, subscription, wait_until
    from tests.web.test_push import start_source

    inst = require_instance(1)
    prefix = new_prefix()
    port = closed_port()
    src = make_server(
        tmp_path, "source", bus=memory_bus(), backend="pulp", pulp=inst.settings(prefix).pulp.model_dump()
    )
    dst = make_server(tmp_path, "destination", bus=memory_bus())
    prepare_source(src, tmp_path / f"rpms-{uuid.uuid4().hex[:8]}", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    url = f"http://127.0.0.1:{port}"
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
    subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
    runtimes: list = []
    backend = inst.backend(repo_prefix=prefix)
    try:
        with Served(dst, port):
            start_source(src, runtimes)
            publish(src)
            wait_until(lambda: subscription(src).acknowledged == "1.0", 120, "1.0 acknowledged on the source")
            late = build_rpms(tmp_path / "late", 1, prefix=f"late-{uuid.uuid4().hex[:8]}-")
            catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
            publish(src)
            wait_until(lambda: subscription(src).acknowledged == "2.0", 120, "2.0 acknowledged on the source")
        assert versions(dst) == ["1.0", "2.0"]
        assert pins(dst, "1.0") == pins(src, "1.0") and pins(dst, "2.0") == pins(src, "2.0")
    finally:
        for r in runtimes:
            r.shutdown()
        purge(backend)
        src.close()
        dst.close()
