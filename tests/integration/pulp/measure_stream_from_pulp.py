"""Measure a pull (content-import sync) from a source whose backend is Pulp (instance 1) into a
local-backend destination, over a real uvicorn: wall time of the first stream plan (publication,
stream distribution, repodata download), of a full pull, of a second full stream (the repodata
cached), and of an incremental pull of ten new packages.

    python -m tests.integration.pulp.measure_stream_from_pulp [packages per repository, default 100]
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.pull import StreamClient
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.services import catalog, pulling
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, add_subscriber, publish
from tests.integration.pulp.support import new_prefix, purge, require_instance
from tests.web.test_bus_over_http import Served


def _pull(dst, url: str) -> dict:
    with StreamClient(url, dst.signer, dst.server_id) as client:
        return pulling.pull_content_view(
            dst.uow(),
            pulling.PullRequest(ORG, "base"),
            open_stream=client.open,
            work_dir=dst.settings.imports_path,
            display=url,
            actor=ACTOR,
        )


def _body_seconds(dst, url: str, params: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    with StreamClient(url, dst.signer, dst.server_id) as client:
        body = client.open(params)
        size = len(body.read()) if body is not None else 0
    return time.monotonic() - started, size


def main(per_repo: int) -> None:
    inst = require_instance(1)
    prefix = new_prefix()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        src = make_server(root, "source", backend="pulp", pulp=inst.settings(prefix).pulp.model_dump())
        dst = make_server(root, "destination")
        prepare_source(src, root / f"rpms-{uuid.uuid4().hex[:8]}", per_repo, ACTOR)
        prepare_destination(dst, src, root, ACTOR)
        add_subscriber(src, dst, root)
        publish(src)
        port = closed_port()
        url = f"http://127.0.0.1:{port}"
        try:
            with Served(src, port):
                t = time.monotonic()
                first = _pull(dst, url)
                full = time.monotonic() - t
                again, size = _body_seconds(dst, url, {"organization": ORG, "content_view": "base"})
                late = build_rpms(root / "late", 10, prefix=f"late-{uuid.uuid4().hex[:8]}-")
                catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
                publish(src)
                t = time.monotonic()
                second = _pull(dst, url)
                incremental = time.monotonic() - t
            assert first["state"] == second["state"] == "imported"
            print(
                f"{4 * per_repo} packages: full pull (first plan: publications, distributions, repodata) "
                f"{full:.1f} s; the same full stream again {again:.1f} s ({size / 1e6:.1f} MB); "
                f"incremental pull of 10 packages {incremental:.1f} s"
            )
        finally:
            purge(inst.backend(repo_prefix=prefix))
            src.close()
            dst.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
