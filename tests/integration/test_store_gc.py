"""`iss store gc` removes store files no package references, and keeps referenced ones."""

from __future__ import annotations

import os
import time

from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.services import catalog
from iss_plugin.services.maintenance import collect_garbage
from iss_plugin.services.server_setup import initialize
from iss_plugin.settings import load_settings


def test_gc_removes_only_unreferenced_old_files(tmp_path):
    settings = load_settings(None, data_dir=str(tmp_path / "d"), server_id="s")
    initialize(settings)
    app = App(settings)
    try:
        catalog.create_organization(app.uow(), "A", "A", "t")
        catalog.create_product(app.uow(), "A", "P", "p", False, None, "t")
        catalog.create_repository(app.uow(), "A", "p", "r", "r", None, "yum", "t")
        catalog.upload_packages(app.uow(), "A", "p/r", build_rpms(tmp_path / "rpms", 2, prefix="k"), "t", "s")
        blobs = [p for p in (settings.store_path / "sha256").rglob("*") if p.is_file()]
        assert len(blobs) == 2
        orphan = blobs[0].parent / ("0" * (64 - len(blobs[0].parent.name)))
        orphan.write_bytes(b"left by a crashed import")
        old = time.time() - 7200
        for p in [*blobs, orphan]:
            os.utime(p, (old, old))
        assert collect_garbage(app, 3600) == 1
        assert not orphan.exists() and all(p.exists() for p in blobs)
    finally:
        app.close()
