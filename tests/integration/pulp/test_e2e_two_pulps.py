"""End to end on two Pulps (issue 4, item 5): a source iss on Pulp 1 and a destination iss on Pulp 2,
RabbitMQ between them, every iss role in its own process.

The source holds ACME with two custom products in the blessed content view `base`: `mirror/upstream`,
synced from a file:// yum tree under Pulp 1's ALLOWED_IMPORT_PATHS, and `tools/utils`, with uploaded
packages. The destination trusts the source's key and the source subscribes the destination to `base`.
Publishing 1.0 on the source brings 1.0 to the destination, published by Pulp 2's content app, where
Debian's dnf lists exactly the packages and downloads one with the source file's sha256. Then the
source changes (the upstream tree gains packages and loses one, a re-sync; more uploads) and 2.0
arrives as an incremental bundle (only the new package files) with the exact package set digests,
and dnf sees the change.

Each server has its own PostgreSQL database (throwaway), data directory and `pulp.repo_prefix`; the
bus is a throwaway RabbitMQ vhost with a unique exchange and queue prefix. Processes (killed by their
own pids), the vhost, the databases and the Pulp repositories under the prefix are removed at the end.
Under CI a missing Pulp, RabbitMQ, PostgreSQL or dnf fails the test; elsewhere it is skipped.
ISS_TEST_TIMING=1 (with -s) prints how long each wait took."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iss_plugin.adapters.backends.pulp_instances import PulpInstance, settings_toml
from iss_plugin.adapters.bus.topology import export_queue_name, import_queue_name, status_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.fixtures import build_rpm, build_rpms, file_sha256, write_yum_repo
from iss_plugin.bootstrap import App
from iss_plugin.cli.main import build_cli
from iss_plugin.domain.packages import package_set_digest
from iss_plugin.services import content_views
from iss_plugin.settings import load_settings
from tests.integration.bus.conftest import rabbit_vhost, session_vhost  # noqa: F401 - the throwaway vhost fixtures
from tests.integration.propagation.conftest import (
    LivePair,
    Processes,
    _another_database,
    exports,
    imports,
    pins,
    subscription,
    versions,
)
from tests.integration.pulp.support import new_prefix, purge, require_instance
from tests.integration.test_dnf_reads_published import dnf_binary

pytestmark = [pytest.mark.pulp, pytest.mark.rabbitmq, pytest.mark.postgres]

ORG, CV = "ACME", "base"
MIRROR, TOOLS = "mirror/upstream", "tools/utils"
T = 90  # seconds any one wait may take


# --- one iss server on a Pulp instance, with PostgreSQL and RabbitMQ -------------------------------


class PulpServer:
    """An iss server: config file (PostgreSQL, the bus, backend = pulp on one instance under a prefix),
    the CLI run in this process, and an App to read its catalog."""

    def __init__(self, name: str, root: Path, inst: PulpInstance, prefix: str, database_url: str, bus: dict):
        self.name, self.inst, self.prefix = name, inst, prefix
        self.config = root / f"{name}.toml"
        top = [
            f'data_dir = "{root / name}"',
            f'server_id = "{name}"',
            f'database_url = "{database_url}"',
            "reconcile_interval_seconds = 3600",
        ]
        bus_lines = ["[bus]"] + [
            f"{k} = {list(v)!r}"
            if isinstance(v, tuple)
            else f"{k} = {v!r}"
            if isinstance(v, (int, float))
            else f'{k} = "{v}"'
            for k, v in bus.items()
        ]
        self.config.write_text("\n".join(top) + "\n" + settings_toml(inst, prefix) + "\n" + "\n".join(bus_lines) + "\n")
        self._app: App | None = None

    def run(self, *args: str):
        result = CliRunner().invoke(build_cli(), ["--config", str(self.config), *args], catch_exceptions=False)
        assert result.exit_code == 0, f"iss {' '.join(args)} ({self.name}) -> {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str):
        return json.loads(self.run("--output", "json", *args).stdout)

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App(load_settings(self.config))
        return self._app

    def backend(self):
        return self.inst.backend(repo_prefix=self.prefix)

    def published_at(self, path: str) -> str | None:
        product, label = path.split("/")
        with self.app.session_factory() as s:
            return s.scalar(
                select(m.Repository.published_at)
                .join(m.Product)
                .where(m.Product.label == product, m.Repository.label == label)
            )

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def served_version(server: PulpServer, path: str) -> int | None:
    """The repository version whose publication the instance's distribution of `path` serves."""
    b = server.backend()
    name = b.pulp_name(f"{ORG}/{path}")
    dist = b.pulp.first("distributions_rpm_rpm_list", f"finding the distribution '{name}'", {"name": name})
    if dist is None or not dist.get("publication"):
        return None
    pub = b.pulp.call(
        "publications_rpm_rpm_read",
        "reading a publication",
        parameters={"rpm_rpm_publication_href": dist["publication"]},
    )
    return int(pub["repository_version"].rstrip("/").rsplit("/", 1)[-1])


def pinned_version(app: App, version: str, path: str) -> int:
    [v] = [v for v in content_views.list_versions(app.uow(), ORG, CV) if v["version"] == version]
    [r] = [r for r in v["repositories"] if f"{r['product']}/{r['repository']}" == path]
    return r["backend_version"]


# --- a real yum client -------------------------------------------------------------------------------


class HttpDnf:
    """Debian's dnf against one repository URL (no system repositories, its own cache)."""

    def __init__(self, binary: str, url: str, work: Path):
        self.binary, self.url, self.work = binary, url, work
        for d in ("cache", "persist", "log", "repos.d"):
            (work / d).mkdir(parents=True, exist_ok=True)

    def run(self, *args: str) -> str:
        cmd = [
            self.binary,
            "-q",
            "-y",
            "--releasever=1",
            "--nogpgcheck",
            f"--repofrompath=x,{self.url}",
            "--repo=x",
            f"--setopt=cachedir={self.work / 'cache'}",
            f"--setopt=persistdir={self.work / 'persist'}",
            f"--setopt=logdir={self.work / 'log'}",
            f"--setopt=reposdir={self.work / 'repos.d'}",
            "--setopt=metadata_expire=0",
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def available(self) -> set[str]:
        """Every package (all versions) as name-[epoch:]version-release.arch."""
        out = self.run("list", "--available", "--showduplicates")
        lines = [
            ln for ln in out.splitlines() if ln.strip() and not ln.startswith(("Available Packages", "Last metadata"))
        ]
        words = " ".join(lines).split()  # a long name wraps its columns onto the next line: read triples
        assert len(words) % 3 == 0, out
        got = set()
        for name_arch, evr, _repo in zip(words[0::3], words[1::3], words[2::3], strict=False):
            name, arch = name_arch.rsplit(".", 1)
            got.add(f"{name}-{evr}.{arch}")
        return got

    def download(self, spec: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        self.run("download", "--destdir", str(dest), spec)
        [got] = [p for p in dest.glob("*.rpm") if p.name.startswith(spec)]
        return got


# --- the fixture -----------------------------------------------------------------------------------


@pytest.fixture
def two_pulps(tmp_path, request):
    inst1, inst2 = require_instance(1), require_instance(2)  # before anything is made: fail or skip at once
    dnf = dnf_binary()
    rabbit_url = request.getfixturevalue("rabbit_vhost")
    src_db = request.getfixturevalue("postgres_url")
    dst_db = _another_database(request)
    tag = uuid.uuid4().hex[:10]
    bus = {
        "url": rabbit_url,
        "exchange": f"e2e-{tag}",
        "prefix": f"e2e-{tag}",
        "retry_delays_ms": (500, 1000),
        "max_attempts": 3,
        "heartbeat": 10,
        "confirm_timeout": 10.0,
    }
    prefix = new_prefix()
    src = PulpServer("source", tmp_path, inst1, prefix, src_db, bus)
    dst = PulpServer("destination", tmp_path, inst2, prefix, dst_db, bus)
    upstream = inst1.import_dir / f"iss-e2e-{tag}"  # Pulp 1 reads file:// trees only under ALLOWED_IMPORT_PATHS
    live = None
    try:
        src.run("init")
        dst.run("init")
        live = LivePair(
            tmp_path,
            src.app,
            dst.app,
            bus,
            src_config=src.config,
            dst_config=dst.config,
            procs=Processes(tmp_path / "logs"),
        )
        yield src, dst, live, upstream, dnf
    finally:
        if live is not None:
            live.procs.stop_all()
        src.close()
        dst.close()
        shutil.rmtree(upstream, ignore_errors=True)
        purge(src.backend())
        purge(dst.backend())


# --- the test --------------------------------------------------------------------------------------


def test_blessed_view_propagates_from_pulp1_to_pulp2_and_dnf_reads_it(two_pulps, tmp_path):
    src, dst, live, upstream, dnf = two_pulps
    times: dict[str, float] = {}
    t0 = time.monotonic()

    # the source: a repository synced from a file:// tree and one with uploads, in a blessed view
    up_v1 = build_rpms(tmp_path / "rpms" / "up1", 6, prefix="up")
    write_yum_repo(upstream, up_v1)
    tools_v1 = build_rpms(tmp_path / "rpms" / "tools1", 4, prefix="tool")
    src.run("organization", "create", "--name", "ACME Corp", "--label", ORG)
    src.run("product", "create", "--organization", ORG, "--name", "Mirror", "--label", "mirror")
    src.run("product", "create", "--organization", ORG, "--name", "Tools", "--label", "tools")
    src.run(
        "repository",
        "create",
        "--organization",
        ORG,
        "--product",
        "mirror",
        "--name",
        "upstream",
        "--url",
        upstream.as_uri(),
    )
    src.run("repository", "create", "--organization", ORG, "--product", "tools", "--name", "utils")
    synced = src.json("repository", "synchronize", "--organization", ORG, "--repository", MIRROR)
    assert synced["changed"], synced
    src.run("repository", "upload", "--organization", ORG, "--repository", TOOLS, *map(str, tools_v1))
    src.run(
        "content-view",
        "create",
        "--organization",
        ORG,
        "--name",
        "Base",
        "--label",
        CV,
        "--blessed",
        "--repository",
        MIRROR,
        "--repository",
        TOOLS,
    )

    # keys both ways: the destination trusts the source, the source knows the destination
    dst.run("organization", "create", "--name", "ACME Corp", "--label", ORG)
    src_key, dst_key = tmp_path / "source.pub", tmp_path / "destination.pub"
    src_key.write_text(src.json("keys", "show")["public_key"])
    dst_identity = dst.json("keys", "show")
    dst_key.write_text(dst_identity["public_key"])
    dst.run("trust", "add", "--name", "source", "--public-key", str(src_key), "--organization", ORG)
    src.run(
        "destination", "add", "--name", "dc2", "--server-id", dst_identity["server_id"], "--public-key", str(dst_key)
    )
    src.run("destination", "subscribe", "--name", "dc2", "--organization", ORG, "--content-view", CV)
    times["source and destination set up"] = time.monotonic() - t0

    # every role a process: relay + export + status on the source, relay + import on the destination
    t = time.monotonic()
    live.role("source", "run", "--role", "relay", "--role", "export", "--role", "status", name="source")
    live.role("destination", "run", "--role", "relay", "--role", "import", name="destination")
    prefix = live.bus["prefix"]
    wanted_queues = (
        export_queue_name(prefix),
        import_queue_name(prefix, "destination"),
        status_queue_name(prefix, "source"),
    )
    live.wait(lambda: all(live.consumers(q) >= 1 for q in wanted_queues), T, "every role consuming")
    times["role processes consuming"] = time.monotonic() - t

    # 1.0
    t = time.monotonic()
    assert src.json("content-view", "publish", "--organization", ORG, "--content-view", CV)["version"] == "1.0"
    live.wait(lambda: versions(dst.app) == ["1.0"], T, "1.0 on the destination")
    live.wait(lambda: all(dst.published_at(p) for p in (MIRROR, TOOLS)), T, "the published URLs recorded")
    live.wait(
        lambda: all(served_version(dst, p) == pinned_version(dst.app, "1.0", p) for p in (MIRROR, TOOLS)),
        T,
        "1.0 served by Pulp 2",
    )
    live.wait(
        lambda: subscription(src.app).acknowledged == "1.0" and subscription(src.app).in_flight is None,
        T,
        "the source's record of the acknowledgement",
    )
    times["publish 1.0 -> served by Pulp 2"] = time.monotonic() - t
    assert pins(dst.app, "1.0") == pins(src.app, "1.0")
    assert [(e.version, e.kind, e.base) for e in exports(src.app)] == [("1.0", "full", None)]
    assert [(i.version, i.kind, i.state) for i in imports(dst.app)] == [("1.0", "full", "imported")]

    t = time.monotonic()
    expect_v1 = {MIRROR: up_v1, TOOLS: tools_v1}
    urls = _check_published(src, dst, "1.0", expect_v1)
    clients = {p: HttpDnf(dnf, urls[p], tmp_path / "dnf" / p.replace("/", "-")) for p in (MIRROR, TOOLS)}
    for p in expect_v1:
        assert clients[p].available() == _nevras(src, p), p
    got = clients[TOOLS].download("tool0001", tmp_path / "downloads" / "1")
    assert file_sha256(got) == file_sha256(tools_v1[1])
    times["dnf on 1.0 (list x2, download)"] = time.monotonic() - t

    # the source changes: the upstream gains 3 packages and an update and loses one (re-sync), more uploads
    t = time.monotonic()
    up_new = build_rpms(tmp_path / "rpms" / "up2", 3, prefix="up", start=6)
    up_update = build_rpm(tmp_path / "rpms" / "up2", "up0000", version="2.0")
    up_v2 = [f for f in up_v1 if not f.name.startswith("up0005")] + up_new + [up_update]
    write_yum_repo(upstream, up_v2)
    assert src.json("repository", "synchronize", "--organization", ORG, "--repository", MIRROR)["changed"]
    tools_new = build_rpms(tmp_path / "rpms" / "tools2", 2, prefix="tool", start=4)
    src.run("repository", "upload", "--organization", ORG, "--repository", TOOLS, *map(str, tools_new))
    times["source change (re-sync, upload)"] = time.monotonic() - t

    # 2.0
    t = time.monotonic()
    assert src.json("content-view", "publish", "--organization", ORG, "--content-view", CV)["version"] == "2.0"
    live.wait(lambda: versions(dst.app) == ["1.0", "2.0"], T, "2.0 on the destination")
    live.wait(
        lambda: all(served_version(dst, p) == pinned_version(dst.app, "2.0", p) for p in (MIRROR, TOOLS)),
        T,
        "2.0 served by Pulp 2",
    )
    live.wait(
        lambda: subscription(src.app).acknowledged == "2.0" and subscription(src.app).in_flight is None,
        T,
        "the source's record of the acknowledgement",
    )
    times["publish 2.0 -> served by Pulp 2"] = time.monotonic() - t

    expect_v2 = {MIRROR: up_v2, TOOLS: tools_v1 + tools_new}
    assert pins(dst.app, "2.0") == pins(src.app, "2.0")
    for p, files in expect_v2.items():  # the exact package sets, not only equal to each other
        product, repo = p.split("/")
        assert pins(src.app, "2.0")[(product, repo)] == (len(files), package_set_digest(file_sha256(f) for f in files))
    exported = exports(src.app)
    assert [(e.version, e.kind, e.base) for e in exported] == [("1.0", "full", None), ("2.0", "incremental", "1.0")]
    assert {k: (v["new_packages"], v["removed"]) for k, v in exported[1].summary.items()} == {
        MIRROR: (4, 1),
        TOOLS: (2, 0),
    }
    _check_incremental_bundle(
        Path(exported[1].path), {MIRROR: [*up_new, up_update], TOOLS: tools_new}, {MIRROR: [up_v1[5]]}, expect_v2
    )
    assert [(i.version, i.kind, i.state) for i in imports(dst.app)] == [
        ("1.0", "full", "imported"),
        ("2.0", "incremental", "imported"),
    ]

    t = time.monotonic()
    assert _check_published(src, dst, "2.0", expect_v2) == urls  # the same URLs, now serving 2.0
    for p in (MIRROR, TOOLS):
        assert clients[p].available() == _nevras(src, p), p
    assert "up0005-1.0-1.noarch" not in clients[MIRROR].available()
    got = clients[MIRROR].download("up0007", tmp_path / "downloads" / "2")
    assert file_sha256(got) == file_sha256(up_new[1])
    times["dnf on 2.0 (list x3, download)"] = time.monotonic() - t
    live.procs.check_alive()

    times["total"] = time.monotonic() - t0
    print("\n" + "\n".join(f"{v:7.2f} s  {k}" for k, v in times.items()))


def _nevras(server: PulpServer, path: str) -> set[str]:
    return set(server.json("repository", "info", "--organization", ORG, "--repository", path)["packages"])


def _check_published(src: PulpServer, dst: PulpServer, version: str, expect: dict[str, list[Path]]) -> dict[str, str]:
    """Each destination repository holds exactly the expected files, at the version pinned by `version`,
    published at a URL of Pulp 2's content app that `repository info` shows; {path: URL}."""
    origin = dst.inst.env["ISS_PULP__CONTENT_ORIGIN"].rstrip("/")
    urls = {}
    for path, files in expect.items():
        info = dst.json("repository", "info", "--organization", ORG, "--repository", path)
        digest = package_set_digest(file_sha256(f) for f in files)
        assert (info["package_count"], info["package_set_digest"]) == (len(files), digest), (path, info)
        assert info["version"] == pinned_version(dst.app, version, path)
        assert info["published_at"] and info["published_at"].startswith(origin + "/"), info["published_at"]
        assert info["published_at"] == dst.published_at(path)
        assert info["packages"] == sorted(_nevras(src, path))
        # the destination's Pulp, read directly: the version has the source's digest
        pulp_info = dst.backend().version_info(f"{ORG}/{path}", info["version"])
        assert (pulp_info.package_count, pulp_info.digest) == (len(files), digest)
        urls[path] = info["published_at"]
    return urls


def _check_incremental_bundle(
    bundle: Path, new: dict[str, list[Path]], removed: dict[str, list[Path]], target: dict[str, list[Path]]
) -> None:
    """The bundle carries only the new package files (each with its sha256) and promises the exact targets."""
    assert bundle.is_file(), bundle
    with tarfile.open(bundle) as tar:
        members = [t for t in tar.getmembers() if t.isfile()]
        [manifest_member] = [t for t in members if t.name.rsplit("/", 1)[-1] == "manifest.json"]
        manifest = json.loads(tar.extractfile(manifest_member).read())
    assert manifest["kind"] == "incremental" and manifest["base_content_view_version"] == "1.0", manifest["kind"]
    repo_of = {r["path"] + "/": f"{r['product']}/{r['label']}" for r in manifest["repositories"]}

    def carried(paths_and_shas) -> dict[str, set]:
        out: dict[str, set] = {}
        for path, sha in paths_and_shas:
            if path.endswith(".rpm"):
                [key] = [k for prefix, k in repo_of.items() if path.startswith(prefix)]
                out.setdefault(key, set()).add((path.rsplit("/", 1)[-1], sha))
        return out

    want = {p: {(f.name, file_sha256(f)) for f in files} for p, files in new.items()}
    assert carried((e["path"], e["sha256"]) for e in manifest["files"]) == want
    in_archive = carried((t.name[t.name.find("repos/") :], None) for t in members if "repos/" in t.name)
    assert {k: {n for n, _ in v} for k, v in in_archive.items()} == {k: {n for n, _ in v} for k, v in want.items()}
    for r in manifest["repositories"]:
        key = f"{r['product']}/{r['label']}"
        files = target[key]
        assert (r["target"]["package_count"], r["target"]["package_set_digest"]) == (
            len(files),
            package_set_digest(file_sha256(f) for f in files),
        ), key
        assert r["base"] is not None and r["added"] == len(new[key]), key
        assert sorted(r["removed"]) == sorted(file_sha256(f) for f in removed.get(key, [])), key
    assert set(repo_of.values()) == set(target)
