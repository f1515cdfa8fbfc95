"""The first `iss demo` on a fresh machine prints nothing the user cannot act on: no "error:" line from
librpm when rpm is not installed, no Python warnings from libraries.

A machine without rpm is simulated with RPM_CONFIGDIR pointing at an empty directory: librpm (inside
createrepo_c) reads <RPM_CONFIGDIR>/rpmrc when it is loaded, as it reads /usr/lib/rpm/rpmrc by default."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ISS = [sys.executable, "-c", "import sys; from iss_plugin.cli.main import main; sys.argv[0] = 'iss'; main()"]


def _noise(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.strip().lower().startswith(("error:", "warning:")) or "Warning:" in line or "Traceback" in line
    ]


def _no_rpm(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "no-rpm"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "ISS_DEBUG")}
    return {**env, "RPM_CONFIGDIR": str(empty)}


def test_without_rpm_loading_the_rpm_library_prints_an_error(tmp_path):
    """The condition the demo must hide: without the CLI's setting, librpm complains on load."""
    r = subprocess.run(
        [sys.executable, "-c", "import createrepo_c"], env=_no_rpm(tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 0
    assert "error: Unable to open" in r.stderr and "rpmrc" in r.stderr, r.stderr


def test_the_first_demo_on_a_machine_without_rpm_is_quiet(tmp_path):
    r = subprocess.run(
        [*ISS, "demo", "--packages", "3", "--keep", str(tmp_path / "demo")],
        env=_no_rpm(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert _noise(r.stdout + r.stderr) == [], r.stderr
    assert "compare: identical" in r.stderr  # it did run: the steps are on stderr, the tables on stdout
    assert "timeline" in r.stdout


def test_where_rpm_is_configured_its_configuration_is_kept(tmp_path):
    config = tmp_path / "rpm"
    config.mkdir()
    (config / "rpmrc").write_text("")
    script = "from iss_plugin.cli.noise import quiet_third_party_noise as q; import os; q(); print(os.environ['RPM_CONFIGDIR'])"
    r = subprocess.run(
        [sys.executable, "-c", script],
        env={**_no_rpm(tmp_path), "RPM_CONFIGDIR": str(config)},
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == str(config), r.stderr


WARN = textwrap.dedent("""
    import warnings
    from iss_plugin.cli.noise import quiet_third_party_noise
    quiet_third_party_noise()
    warnings.warn("a library would like its caller to change", UserWarning)
    print("done")
""")


def test_library_warnings_are_hidden_from_the_user(tmp_path):
    r = subprocess.run([sys.executable, "-c", WARN], env=_no_rpm(tmp_path), capture_output=True, text=True)
    assert r.stdout.strip() == "done"
    assert r.stderr == ""


def test_a_developer_still_sees_them_when_asking(tmp_path):
    asked = subprocess.run(
        [sys.executable, "-W", "default", "-c", WARN], env=_no_rpm(tmp_path), capture_output=True, text=True
    )
    debug = subprocess.run(
        [sys.executable, "-c", WARN], env={**_no_rpm(tmp_path), "ISS_DEBUG": "1"}, capture_output=True, text=True
    )
    for r in (asked, debug):
        assert "UserWarning: a library would like its caller to change" in r.stderr
