"""Bad CLI input: a clear message (what, where, what to do), the documented exit code
(2 usage, 3 rejected input; never 1 with a Python exception name), and nothing changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import CUSTOM, RH, RH_ID
from .servers import Server

NO_EXCEPTION_NAMES = ("Traceback", "Error:", "ISS_DEBUG")


def files_under(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs if d.exists() for p in d.rglob("*"))


def fails(server: Server, code: int, *args: str, needles: tuple[str, ...] = ()) -> str:
    """Run `iss ARGS`, expect exit `code`, the needles in the message and no Python exception name;
    the catalog, the store and the export and import directories are unchanged."""
    before, files = (
        server.state(),
        files_under(server.data / "exports", server.data / "imports", server.data / "staging"),
    )
    r = server.run(*args, expect=code)
    out = r.output
    for needle in needles:
        assert needle in out, out
    assert not any(n in out for n in NO_EXCEPTION_NAMES), out
    assert server.state() == before, f"iss {' '.join(args)} failed but changed the server"
    assert files_under(server.data / "exports", server.data / "imports", server.data / "staging") == files
    return out


# --- 1. iss worker -------------------------------------------------------------------------------


def test_worker_without_a_server_id_is_a_usage_error(tmp_path):
    s = Server("noid", tmp_path / "noid")
    s.root.mkdir(parents=True)
    s.config.write_text(f'data_dir = "{s.data}"\n')  # no server_id, and `iss init` never ran
    r = s.run("worker", "export", expect=2)
    assert "no server id" in r.output and "run `iss init`" in r.output, r.output
    assert "Traceback" not in r.output
    assert not s.data.exists()


def _iss_process(cfg: Path, *args: str, env: dict) -> subprocess.Popen:
    code = "import sys; from iss_plugin.cli.main import main; sys.argv[0] = 'iss'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(cfg), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _lines_until(p: subprocess.Popen, text: str, timeout: float) -> str:
    """stderr lines up to the first one holding `text`; fails if the process ends or time runs out."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stderr.readline()  # the worker logs a line per retry, so this returns
        if not line:
            pytest.fail(f"the worker ended before saying '{text}':\n{''.join(lines)}")
        lines.append(line)
        if text in line:
            return "".join(lines)
    p.kill()
    pytest.fail(f"the worker did not say '{text}' within {timeout:.0f} s:\n{''.join(lines)}")


def test_sigterm_stops_a_worker_that_cannot_reach_the_broker(source):
    p = _iss_process(source.config, "worker", "export", env={"ISS_BUS__URL": "amqp://guest:guest@127.0.0.1:1//"})
    early = _lines_until(p, "cannot connect to the broker", timeout=60)  # up and retrying (slow on a loaded machine)
    sent = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        _out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _out, err = p.communicate()
        pytest.fail(f"the worker did not stop within 10 s of SIGTERM:\n{err}")
    err = early + err
    assert p.returncode == 0, err
    assert time.monotonic() - sent < 10
    retries = [line for line in err.splitlines() if "cannot connect to the broker" in line]
    assert retries, err
    assert "guest:guest" not in err  # the password is masked
    assert "Traceback" not in err, err  # one line per retry, no traceback


def test_a_second_signal_exits_at_once(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from consumers.cli import _on_signal
        _on_signal(lambda: None)   # a stop that never finishes (a handler busy with a long import)
        print("ready", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.poll() is None  # the first one asks for a clean stop
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("a second SIGTERM did not exit at once")
    assert p.returncode == 128 + signal.SIGTERM
    assert "exiting now" in p.stderr.read()


# --- 2. server ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["dc2.example.com", "dc 2", "dc*", "dc#2", "x" * 129, ""])
def test_a_bad_server_id_in_the_settings(tmp_path, bad):
    s = Server("x", tmp_path / "x")
    s.root.mkdir(parents=True)
    s.config.write_text(f'data_dir = "{s.data}"\nserver_id = "{bad}"\n')
    r = s.run("init", expect=2)
    assert "server_id" in r.output and str(s.config) in r.output and "letters, digits" in r.output, r.output
    assert not s.data.exists()


def test_init_makes_the_default_server_id_from_the_first_hostname_label(tmp_path, monkeypatch):
    monkeypatch.setattr("iss_plugin.services.server_setup.socket.gethostname", lambda: "web 01!.dc2.example.com")
    s = Server("x", tmp_path / "x")
    s.root.mkdir(parents=True)
    s.config.write_text(f'data_dir = "{s.data}"\n')
    server_id = s.json("init")["server_id"]
    head, _, suffix = server_id.rpartition("-")
    assert head == "web-01" and len(suffix) == 8, server_id
    assert s.json("keys", "show")["server_id"] == server_id


@pytest.mark.parametrize("bad", ["dc2.example.com", "dc 2", "dc*", "dc#"])
def test_destination_add_refuses_a_bad_server_id(tmp_path, source, bad):
    key = tmp_path / "dest.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    fails(
        source,
        2,
        "destination",
        "add",
        "--name",
        "dc2",
        "--server-id",
        bad,
        "--public-key",
        str(key),
        needles=(f"--server-id '{bad}' is not valid", "letters, digits, '-' and '_'"),
    )
    assert source.json("destination", "list") == []


# --- 3. entitlement manifests --------------------------------------------------------------------


def _manifest(tmp_path: Path, products: list[dict], name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"manifest_id": "m-2", "organization": "ACME", "products": products}))
    return path


def test_manifest_with_a_duplicate_content_id_or_label(tmp_path, destination):
    path = _manifest(
        tmp_path,
        [
            {"label": "rhel-10", "name": "RHEL 10", "content_id": "rh-500"},
            {"label": "rhel-10b", "name": "RHEL 10 again", "content_id": "rh-500"},
            {"label": "rhel-8", "name": "RHEL 8", "content_id": "rh-400"},
            {"label": "rhel-8", "name": "RHEL 8 again", "content_id": "rh-401"},
        ],
    )
    fails(
        destination,
        3,
        "manifest",
        "import",
        str(path),
        needles=("nothing imported", "content_id 'rh-500' appears 2 times", "label 'rhel-8' appears 2 times"),
    )


def test_manifest_path_that_is_a_directory_or_not_utf8(tmp_path, destination):
    fails(destination, 2, "manifest", "import", str(tmp_path), needles=(f"manifest path {tmp_path} is a directory",))
    binary = tmp_path / "manifest.bin"
    binary.write_bytes(b"\xff\xfe{\x00\x80")
    fails(destination, 3, "manifest", "import", str(binary), needles=(f"manifest file {binary} is not UTF-8",))


def test_manifest_reusing_a_content_id_under_another_label(tmp_path, destination):
    path = _manifest(tmp_path, [{"label": "rhel-9-renamed", "name": "RHEL 9", "content_id": RH_ID}])
    fails(
        destination,
        3,
        "manifest",
        "import",
        str(path),
        needles=(
            "nothing imported",
            f"content id {RH_ID} (product 'rhel-9-renamed') is already Red Hat product '{RH}'",
        ),
    )


def test_manifest_import_is_still_idempotent(tmp_path, destination):
    path = _manifest(tmp_path, [{"label": RH, "name": "RHEL 9", "content_id": RH_ID}])
    before = destination.state()
    destination.run("manifest", "import", str(path))
    assert destination.state()["products"] == before["products"]


def test_product_create_with_a_content_id_already_used(source):
    fails(
        source,
        2,
        "product",
        "create",
        "--organization",
        "ACME",
        "--name",
        "RHEL 9 copy",
        "--label",
        "rhel-9-copy",
        "--redhat",
        "--content-id",
        RH_ID,
        needles=(f"content id {RH_ID} is already used by product '{RH}' in organization 'ACME'",),
    )


# --- 4. other CLI inputs -------------------------------------------------------------------------


def test_content_view_with_a_repository_named_twice(source):
    source.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    out = source.json(
        "content-view",
        "create",
        "--organization",
        "ACME",
        "--name",
        "Twice",
        "--label",
        "twice",
        "--repository",
        f"{CUSTOM}/utils",
        "--repository",
        f"{CUSTOM}/utils",
    )
    assert out["repositories"] == [f"{CUSTOM}/utils"]
    source.run("content-view", "publish", "--organization", "ACME", "--content-view", "twice")
    [version] = source.json("content-view", "version", "list", "--organization", "ACME", "--content-view", "twice")
    assert [f"{r['product']}/{r['repository']}" for r in version["repositories"]] == [f"{CUSTOM}/utils"]


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00binary", b"hello, not a key\n", b""], ids=["binary", "text", "empty"]
)
def test_a_public_key_file_that_is_not_pem(tmp_path, source, content):
    key = tmp_path / "key.pub"
    key.write_bytes(content)
    fails(
        source,
        2,
        "trust",
        "add",
        "--name",
        "src",
        "--public-key",
        str(key),
        "--organization",
        "ACME",
        needles=(str(key), "not a PEM public key"),
    )
    fails(
        source,
        2,
        "destination",
        "add",
        "--name",
        "dc2",
        "--server-id",
        "dc2",
        "--public-key",
        str(key),
        needles=(str(key), "not a PEM public key"),
    )
    assert source.json("trust", "list") == [] and source.json("destination", "list") == []


EXPORT_REPO = (
    "content-export",
    "complete",
    "repository",
    "--organization",
    "ACME",
    "--product",
    CUSTOM,
    "--repository",
    "utils",
)


@pytest.mark.parametrize("size", ["nan", "inf", "-inf", "0", "-1"])
def test_chunk_size_must_be_positive_and_finite(published_source, size):
    fails(
        published_source,
        2,
        *EXPORT_REPO,
        "--format",
        "tgz",
        "--chunk-size-mb",
        size,
        needles=(f"--chunk-size-mb {float(size)}", "positive, finite number of MiB"),
    )


def test_export_path_that_cannot_be_created(tmp_path, published_source):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for path in ("/proc/nope", str(blocker / "sub")):
        fails(
            published_source,
            2,
            *EXPORT_REPO,
            "--path",
            path,
            needles=(f"cannot create the output directory {path}", "--path"),
        )


@pytest.mark.parametrize(
    "args",
    [("organization", "list"), ("product", "list", "--organization", "ACME"), ("reconcile",), ("worker", "export")],
)
def test_a_database_that_was_never_migrated(tmp_path, args):
    s = Server("fresh", tmp_path / "fresh")
    s.write_config()
    r = s.run(*args, expect=2)
    assert "run `iss init` (or `iss db upgrade`)" in r.output and str(s.data / "iss.db") in r.output, r.output
    assert "Traceback" not in r.output and "OperationalError" not in r.output
    assert not (s.data / "iss.db").exists() and not s.data.exists()
    s.data.mkdir(parents=True)
    (s.data / "iss.db").touch()  # an empty file left by something else: no schema in it
    r = s.run(*args, expect=2)
    assert "has no iss schema" in r.output and "run `iss init` (or `iss db upgrade`)" in r.output, r.output
    assert (s.data / "iss.db").stat().st_size == 0
    s.run("db", "upgrade")
    r = s.run("organization", "list", expect=4)  # a schema but nobody to act as: `iss init` makes the administrator
    assert "no users yet" in r.output and "iss init" in r.output, r.output
    s.run("init")
    s.run("organization", "list")


def test_uploading_a_file_that_is_not_an_rpm(tmp_path, source, rpms, capfd):
    source.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    good = rpms("good", 1, "good-pkg")[0]
    bad = tmp_path / "notes.rpm"
    bad.write_text("these are notes, not a package\n")
    capfd.readouterr()
    fails(
        source,
        3,
        "repository",
        "upload",
        "--organization",
        "ACME",
        "--repository",
        f"{CUSTOM}/utils",
        str(good),
        str(bad),
        needles=("1 of 2 files are not yum packages", "nothing was uploaded", f"{bad}: not an RPM package"),
    )
    assert "C_CREATEREPOLIB" not in capfd.readouterr().err  # refused before createrepo_c reads it


@pytest.mark.parametrize(
    "url", ["garbage://x", "ftp://mirror.example.com/repo", "https:///no-host", "mirror.example.com/repo"]
)
def test_repository_url_scheme(source, url):
    fails(
        source,
        2,
        "repository",
        "create",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--name",
        "mirror",
        "--url",
        url,
        needles=(f"--url '{url}'",),
    )
    assert source.json("repository", "list", "--organization", "ACME") == []


# --- 5. empty incrementals -----------------------------------------------------------------------


def test_incremental_repository_export_from_the_target_version(published_source):
    info = published_source.json("repository", "info", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")
    target = info["version"]
    args = (
        "content-export",
        "incremental",
        "repository",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--repository",
        "utils",
    )
    fails(
        published_source,
        2,
        *args,
        "--from-version",
        str(target),
        needles=(f"the base version {target}", f"not older than the exported version {target}"),
    )
    fails(
        published_source,
        2,
        *args,
        "--since",
        "2999-01-01T00:00",  # the newest version before then: the target
        needles=(f"the base version {target}", "would be empty"),
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--online",), "--online and --url go together"),
        (("--url", "http://dc2:8443"), "--online and --url go together"),
        (("--online", "--url", "ftp://dc2"), "--url must be the destination's http(s):// address"),
    ],
)
def test_destination_add_online_needs_an_http_url(tmp_path, source, extra, needle):
    key = tmp_path / "dest.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    add = ("destination", "add", "--name", "dc2", "--server-id", "dc2", "--public-key", str(key))
    fails(source, 2, *add, *extra, needles=(needle,))
    # nothing was added: the same name is still free
    assert source.json(*add, "--online", "--url", "https://dc2:8443")["name"] == "dc2"
