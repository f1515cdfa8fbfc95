"""The manual flow through the real CLI with both iss servers on Pulp (source on instance 1,
destination on instance 2): complete export, import, incremental export with removals, import to
the exact versions, re-delivery a no-op. The same commands as tests/e2e, another backend."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from iss_plugin.adapters.backends.pulp_instances import settings_toml
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.cli.main import build_cli
from tests.integration.pulp.support import purge, require_instance

pytestmark = pytest.mark.pulp


class PulpIss:
    """One iss server (SQLite catalog) whose content backend is a Pulp instance."""

    def __init__(self, name: str, root, instance: int, prefix: str):
        self.name, self.root, self.prefix = name, root, prefix
        self.inst = require_instance(instance)
        root.mkdir(parents=True)
        self.config = root / "settings.toml"
        self.config.write_text(
            f'data_dir = "{root / "data"}"\nserver_id = "{name}"\n' + settings_toml(self.inst, prefix)
        )

    def run(self, *args: str, expect: int = 0):
        result = CliRunner().invoke(build_cli(), ["--config", str(self.config), *args], catch_exceptions=False)
        assert result.exit_code == expect, f"iss {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str, expect: int = 0):
        return json.loads(self.run("--output", "json", *args, expect=expect).stdout)

    def pins(self, version: str) -> dict:
        versions = self.json("content-view", "version", "list", "--organization", "ACME", "--content-view", "base")
        v = next(v for v in versions if v["version"] == version)
        return {
            (r["product"], r["repository"]): (r["package_count"], r["package_set_digest"]) for r in v["repositories"]
        }

    def backend(self):
        return self.inst.backend(repo_prefix=self.prefix)

    def publications_of(self, key: str, version: int) -> list[str]:
        backend = self.backend()
        repo = backend.pulp.first("repositories_rpm_rpm_list", "finding", {"name": backend.pulp_name(key)})
        return [
            e["pulp_href"]
            for e in backend.pulp.list(
                "publications_rpm_rpm_list", "listing", {"repository_version": f"{repo['versions_href']}{version}/"}
            )
        ]


def _backend_versions(versions: list[dict], version: str) -> dict:
    v = next(v for v in versions if v["version"] == version)
    return {(r["product"], r["repository"]): r["backend_version"] for r in v["repositories"]}


@pytest.fixture
def servers(tmp_path, prefix):
    src = PulpIss("source", tmp_path / "source", 1, prefix)
    dst = PulpIss("destination", tmp_path / "destination", 2, prefix)
    try:
        yield src, dst
    finally:
        purge(src.backend())
        purge(dst.backend())


def test_complete_then_incremental_between_two_pulps_through_the_cli(servers, tmp_path):
    src, dst = servers
    src.run("init")
    src.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    src.run("product", "create", "--organization", "ACME", "--name", "Tools", "--label", "tools")
    src.run("repository", "create", "--organization", "ACME", "--product", "tools", "--name", "utils")
    files = build_rpms(tmp_path / "rpms" / "a", 8, prefix="cli")
    src.run("repository", "upload", "--organization", "ACME", "--repository", "tools/utils", *map(str, files))
    src.run(
        "content-view",
        "create",
        "--organization",
        "ACME",
        "--name",
        "Base",
        "--label",
        "base",
        "--blessed",
        "--repository",
        "tools/utils",
    )
    src.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")

    dst.run("init")
    dst.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    key = tmp_path / "source.pub"
    key.write_text(src.json("keys", "show")["public_key"])
    dst.run("trust", "add", "--name", "source", "--public-key", str(key), "--organization", "ACME")

    # publishing the view made the publication Pulp's exporter needs (as Katello does); the export reuses it
    pinned = _backend_versions(
        src.json("content-view", "version", "list", "--organization", "ACME", "--content-view", "base"), "1.0"
    )[("tools", "utils")]
    made = src.publications_of("ACME/tools/utils", pinned)
    assert len(made) == 1
    full = src.json(
        "content-export", "complete", "version", "--organization", "ACME", "--content-view", "base", "--version", "1.0"
    )
    assert src.publications_of("ACME/tools/utils", pinned) == made
    assert (
        dst.json("content-import", "version", "--organization", "ACME", "--path", full["path"])["state"] == "imported"
    )
    assert dst.pins("1.0") == src.pins("1.0")

    new = build_rpms(tmp_path / "rpms" / "b", 3, prefix="cli-new", version="2.0")
    src.run("repository", "upload", "--organization", "ACME", "--repository", "tools/utils", *map(str, new))
    listed = src.json("repository", "info", "--organization", "ACME", "--repository", "tools/utils")["packages"]
    gone = [p for p in listed if "cli-new" not in p][:2]  # two of version 1.0's packages
    src.run("repository", "remove-package", "--organization", "ACME", "--repository", "tools/utils", *gone)
    src.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")
    incr = src.json(
        "content-export",
        "incremental",
        "version",
        "--organization",
        "ACME",
        "--content-view",
        "base",
        "--version",
        "2.0",
    )
    assert incr["kind"] == "incremental", incr
    assert incr["repositories"]["tools/utils"]["new_packages"] == 3
    assert incr["repositories"]["tools/utils"]["removed"] == 2
    assert (
        dst.json("content-import", "version", "--organization", "ACME", "--path", incr["path"])["state"] == "imported"
    )
    assert dst.pins("2.0") == src.pins("2.0")
    again = dst.json("content-import", "version", "--organization", "ACME", "--path", incr["path"])
    assert again["state"] == "already_imported"

    # the destination's Pulp holds the target itself, under the configured prefix
    [count, digest] = dst.pins("2.0")[("tools", "utils")]
    versions = dst.backend().list_versions("ACME/tools/utils")
    assert (versions[-1].package_count, versions[-1].digest) == (count, digest)


def test_iss_watch_announces_a_version_made_in_pulp_by_someone_else(servers, tmp_path):
    """A sync run directly through pulp-glue (as pulp-cli would), not through iss: `iss watch`
    notices the new version and announces it once."""
    from pulp_glue.common.context import PulpContext
    from pulp_glue.rpm.context import PulpRpmRemoteContext, PulpRpmRepositoryContext

    from iss_plugin.adapters.fixtures import write_yum_repo
    from iss_plugin.domain.packages import package_set_digest

    src, _ = servers
    src.run("init")
    src.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    src.run("product", "create", "--organization", "ACME", "--name", "Tools", "--label", "tools")
    src.run("repository", "create", "--organization", "ACME", "--product", "tools", "--name", "utils")
    assert src.json("watch", "--once") == []

    class Cli(PulpContext):
        def echo(self, *a, **k):
            pass

    ctx = Cli.from_config(
        {"base_url": src.inst.url, "username": "admin", "password": src.inst.password_file.read_text().strip()}
    )
    files = build_rpms(tmp_path / "outside", 4, prefix="outside")
    tree = write_yum_repo(src.inst.import_dir / f"iss-test-{src.prefix.strip('/')}", files)
    remote = PulpRpmRemoteContext(ctx)
    try:
        remote.create({"name": f"{src.prefix}outside-cli", "url": tree.as_uri() + "/", "policy": "immediate"})
        repo = PulpRpmRepositoryContext(ctx, entity={"name": f"{src.prefix}ACME/tools/utils"})
        repo.sync(body={"remote": remote})
    finally:
        import shutil

        shutil.rmtree(tree, ignore_errors=True)
        remote.delete()
    [announced] = src.json("watch", "--once")
    assert (announced["repository"], announced["version"]) == ("ACME/tools/utils", 1)
    assert src.json("watch", "--once") == []  # once
    info = src.backend().version_info("ACME/tools/utils", 1)
    from iss_plugin.adapters.fixtures import file_sha256

    assert info.digest == package_set_digest(file_sha256(f) for f in files)
