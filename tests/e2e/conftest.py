from __future__ import annotations

import pytest

from .servers import Server

RH, RH_ID, CUSTOM = "rhel-9", "rh-479", "tools"


@pytest.fixture
def source(tmp_path):
    s = Server("source", tmp_path / "source")
    s.write_config()
    s.run("init")
    s.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    s.run(
        "product",
        "create",
        "--organization",
        "ACME",
        "--name",
        "RHEL 9",
        "--label",
        RH,
        "--redhat",
        "--content-id",
        RH_ID,
    )
    s.run("product", "create", "--organization", "ACME", "--name", "Tools", "--label", CUSTOM)
    return s


@pytest.fixture
def rpms(tmp_path):
    from iss_plugin.adapters.fixtures import build_rpms

    def make(name: str, count: int, prefix: str, version: str = "1.0"):
        return build_rpms(tmp_path / "rpms" / name, count, prefix=prefix, version=version)

    return make


@pytest.fixture
def published_source(source, rpms):
    """ACME with a Red Hat and a custom repository in the blessed view 'base', version 1.0 published."""
    for product, repo in ((RH, "baseos"), (CUSTOM, "utils")):
        source.run("repository", "create", "--organization", "ACME", "--product", product, "--name", repo)
        files = rpms(repo, 8, f"{repo}-pkg")
        source.run(
            "repository", "upload", "--organization", "ACME", "--repository", f"{product}/{repo}", *map(str, files)
        )
    source.run(
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
        f"{RH}/baseos",
        "--repository",
        f"{CUSTOM}/utils",
    )
    source.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")
    return source


def make_destination(tmp_path, source: Server, database_url: str | None = None, name: str = "destination") -> Server:
    d = Server(name, tmp_path / name, database_url)
    d.write_config()
    d.run("init")
    d.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    manifest = tmp_path / f"{name}-entitlements.json"
    manifest.write_text(
        '{"manifest_id": "m-1", "organization": "ACME", "products": '
        f'[{{"label": "{RH}", "name": "RHEL 9", "content_id": "{RH_ID}"}}]}}'
    )
    d.run("manifest", "import", str(manifest))
    key = tmp_path / f"{source.name}.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    d.run("trust", "add", "--name", source.name, "--public-key", str(key), "--organization", "ACME")
    return d


@pytest.fixture
def destination(tmp_path, source):
    return make_destination(tmp_path, source)
