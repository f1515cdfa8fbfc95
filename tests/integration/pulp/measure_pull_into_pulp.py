"""Measure a pull (content-import sync) into a Pulp destination (instance 2) from a local-backend
source's stream over a real uvicorn: wall time of a full pull and of an incremental one, and the
peak bytes of package files lying outside Pulp's store (the destination's import work directory and
the shared import directory Pulp reads), sampled every 10 ms.

    python -m tests.integration.pulp.measure_pull_into_pulp [packages per repository, default 100] [stream_batch]
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from consumers.demo import CUSTOM_PRODUCT, ORG, REPOS, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.pull import StreamClient
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.services import catalog, pulling
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, add_subscriber, publish
from tests.integration.pulp.support import new_prefix, purge, require_instance
from tests.web.test_bus_over_http import Served


class PeakDisk:
    def __init__(self, *roots: Path) -> None:
        self.roots, self.peak, self.done = roots, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            for root in self.roots:
                with contextlib.suppress(OSError):  # a directory or file gone while walked
                    for p in root.rglob("*.rpm"):
                        with contextlib.suppress(OSError):
                            total += p.stat().st_size
            self.peak = max(self.peak, total)
            time.sleep(0.01)

    def __enter__(self) -> PeakDisk:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def main(per_repo: int, stream_batch: int | None = None) -> None:
    inst = require_instance(2)
    prefix = new_prefix()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = closed_port()
        src = make_server(root, "source")
        pulp = inst.settings(prefix).pulp.model_dump()
        if stream_batch is not None:
            pulp["stream_batch"] = stream_batch
        dst = make_server(root, "destination", backend="pulp", pulp=pulp)
        prepare_source(src, root / "rpms", 1, ACTOR)
        run = uuid.uuid4().hex[:8]  # packages Pulp never saw (it would not take known ones again)
        for product, repos in REPOS.items():
            for repo in repos:
                files = build_rpms(root / "rpms" / f"{repo}-{run}", per_repo - 1, prefix=f"{repo}-{run}-")
                catalog.upload_packages(src.uow(), ORG, f"{product}/{repo}", files, ACTOR, src.server_id)
        prepare_destination(dst, src, root, ACTOR)
        add_subscriber(src, dst, root)
        publish(src)
        url = f"http://127.0.0.1:{port}"
        bundle = sum(p.stat().st_size for p in (root / "rpms").rglob("*.rpm"))
        try:
            with Served(src, port):
                for label in ("full", "incremental +20"):
                    if label != "full":
                        late = build_rpms(root / "late", 20, prefix=f"late-{run}-")
                        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
                        publish(src)
                    with PeakDisk(Path(dst.settings.imports_path), inst.import_dir) as disk:
                        t0 = time.monotonic()
                        with StreamClient(url, dst.signer, dst.server_id) as client:
                            result = pulling.pull_content_view(
                                dst.uow(),
                                pulling.PullRequest(ORG, "base"),
                                open_stream=client.open,
                                work_dir=dst.settings.imports_path,
                                display=url,
                                actor=ACTOR,
                            )
                        took = time.monotonic() - t0
                    print(
                        f"{label}: {4 * per_repo} packages ({bundle / 1e6:.1f} MB) -> {result['state']} in {took:.1f} s; "
                        f"peak package bytes outside Pulp's store {disk.peak / 1e3:.0f} kB"
                    )
        finally:
            purge(inst.backend(repo_prefix=prefix))
            src.close()
            dst.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, int(sys.argv[2]) if len(sys.argv) > 2 else None)
