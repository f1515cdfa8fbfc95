"""A server that streams bundles (`iss serve` on a source) does not load what only a destination or
a sync needs: the push router imports the import services when a push arrives, the local backend
its syncer (and its HTTP client) when a sync runs (issue 12: the source's RSS while it streams
20,000 packages under 150 MB; these imports were ~10 MiB of it)."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_FOR_STREAMING = ("httpx", "rich", "iss_plugin.services.pushing", "iss_plugin.services.pulling")


def test_the_web_app_and_the_stream_path_import_no_destination_side() -> None:
    code = (
        "import sys, json, uvicorn; from iss_plugin.web.app import _routers; from iss_plugin.web.api import install_api;"
        "from iss_plugin.web.pages.render import environment; _routers(); environment();"
        "import iss_plugin.services.streaming, iss_plugin.adapters.backends.local, iss_plugin.adapters.bundles.writer;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    assert "fastapi" in loaded and "iss_plugin.web.api.push" in loaded  # the probe sees imports
    assert sorted(loaded & set(NOT_FOR_STREAMING)) == []
