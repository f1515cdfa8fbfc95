"""Bundles for the bus over HTTP: the source's bundle.ready carries <web_base_url>/api/v1/bundles/<id>/download,
served by a real uvicorn on a free loopback port; the destination's import worker downloads it with
a request signed by its own Ed25519 key (no shared filesystem: its fetch_roots refuse any file://)."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from sqlalchemy import select

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles import request_signing
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.db import models as m
from iss_plugin.web.app import create_app
from tests.conftest import closed_port
from tests.integration.propagation.conftest import (
    ACTOR,
    add_subscriber,
    memory_bus,
    outbox,
    publish,
    versions,
    wait_until,
)


class Served:
    """An iss app (or, with `asgi`, any ASGI callable) served by uvicorn on loopback while entered."""

    def __init__(self, app, port: int, *, asgi=None) -> None:
        served = asgi if asgi is not None else create_app(app)
        self.server = uvicorn.Server(uvicorn.Config(served, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture
def http_pair(tmp_path):
    port = closed_port()
    bus = memory_bus()
    src = make_server(tmp_path, "source", bus=bus, web_base_url=f"http://127.0.0.1:{port}")
    nowhere = tmp_path / "no-shared-files"
    nowhere.mkdir()
    dst = make_server(tmp_path, "destination", bus=bus, fetch_roots=[str(nowhere)])
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    add_subscriber(src, dst, tmp_path)
    runtimes = []
    try:
        with Served(src, port):
            yield src, dst, port, runtimes
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def test_a_destination_fetches_its_bundle_over_http_with_a_signed_request(http_pair):
    import httpx

    from consumers.run import Runtime

    src, dst, port, runtimes = http_pair
    runtimes.append(Runtime(src, ("relay", "export", "status"), relay_poll=0.05).start())
    runtimes.append(Runtime(dst, ("relay", "import"), relay_poll=0.05).start())
    publish(src)
    wait_until(lambda: "1.0" in versions(dst), 60, "1.0 on the destination, fetched over HTTP")
    ready = outbox(src, "iss.bundle.ready.v1")[0].body["data"]
    assert ready["location"].startswith(f"http://127.0.0.1:{port}/api/v1/bundles/")
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.state)).all() == ["imported"]

    # the same URL: unsigned, signed by a stranger, signed too long ago, or for another destination
    url, path = ready["location"], ready["location"].split(str(port), 1)[1]
    assert httpx.get(url).status_code == 401
    stranger = request_signing.authorization(Signer.generate(), dst.server_id, "GET", path)
    assert httpx.get(url, headers={"Authorization": stranger}).status_code == 401
    stale = request_signing.authorization(dst.signer, dst.server_id, "GET", path, now=time.time() - 600)
    assert httpx.get(url, headers={"Authorization": stale}).status_code == 401
    good = request_signing.authorization(dst.signer, dst.server_id, "GET", path)
    assert httpx.get(url, headers={"Authorization": good}).status_code == 200

    other = Signer.generate()
    from iss_plugin.services import subscriptions

    subscriptions.add_destination(src.uow(), "west", "west-1", other.public_pem, ACTOR)
    theirs = request_signing.authorization(other, "west-1", "GET", path)
    r = httpx.get(url, headers={"Authorization": theirs})
    assert r.status_code == 403 and "neither addressed to destination 'west'" in r.json()["message"]
    assert ready["organization"] == ORG
