"""`iss --help` (and so every command before it does its work) stays cheap: the command modules import
the services, the web framework, Pulp's client and the database layer inside the commands, not at
module level (issue 12, point 5: the RSS of both sides of a propagation under 150 MB).

Measured on the development machine: `iss --help` peaked at 68 MiB RSS before the lazy imports and
at 23 MiB after; a bare `import click` is 14 MiB, `import iss_plugin.bootstrap` alone 53 MiB. The
bound, 40 MiB, leaves ~17 MiB of margin over today's figure and is well below the old one."""

from __future__ import annotations

import json
import subprocess
import sys

HELP_RSS_BOUND_KIB = 40 * 1024

HEAVY = ("fastapi", "starlette", "uvicorn", "pulp_glue", "sqlalchemy", "kombu", "httpx", "pydantic", "createrepo_c")

# A fresh interpreter runs the child and reports its peak RSS: RUSAGE_CHILDREN of the pytest process
# would also hold every child any earlier test waited for.
_PEAK_OF_CHILD = """
import json, resource, subprocess, sys
r = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "out": r.stdout, "err": r.stderr,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _peak_rss(argv: list[str]) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_CHILD, json.dumps(argv)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    result: dict[str, object] = json.loads(r.stdout)
    return result


def test_iss_help_peak_rss_is_bounded() -> None:
    iss_help = [sys.executable, "-c", "import sys; from iss_plugin.cli.main import main; sys.argv[0] = 'iss'; main()"]
    r = _peak_rss([*iss_help, "--help"])
    assert r["rc"] == 0, r["err"]
    assert "content-import" in str(r["out"]) and "worker" in str(r["out"])  # the whole tree, entry points too
    assert isinstance(r["maxrss_kib"], int) and r["maxrss_kib"] < HELP_RSS_BOUND_KIB, r["maxrss_kib"]


def test_the_bound_tells_an_eager_import_apart() -> None:
    """The measurement can fail: a process that imports what the commands need at run time
    (the wiring of the App: database, bus, backends) is over the bound."""
    r = _peak_rss([sys.executable, "-c", "import iss_plugin.bootstrap"])
    assert r["rc"] == 0, r["err"]
    assert isinstance(r["maxrss_kib"], int) and r["maxrss_kib"] > HELP_RSS_BOUND_KIB, r["maxrss_kib"]


def test_building_the_tree_imports_no_heavy_library() -> None:
    code = (
        "import sys, json; from iss_plugin.cli.main import build_cli; build_cli(); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout))
    assert "iss_plugin" in loaded and "consumers" in loaded and "producers" in loaded  # the probe sees imports
    assert sorted(loaded & set(HEAVY)) == []
