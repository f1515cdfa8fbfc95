"""The bundle manifest schema matches BundleManifest.to_dict(), and its examples validate."""

import copy
import json

import pytest

import schemas
from iss_plugin.domain.manifest import BundleManifest

MANIFEST = "bundle/manifest.v1.json"


def example(name: str) -> dict:
    return json.loads((schemas.ROOT / "examples" / "bundle" / f"manifest.{name}.json").read_text())


@pytest.mark.parametrize("name", ["full", "incremental"])
def test_examples_validate_and_round_trip(name):
    data = example(name)
    assert schemas.problems(MANIFEST, data) == []
    assert BundleManifest.from_dict(data).to_dict() == data


def test_every_schema_is_a_valid_draft_2020_12_schema():
    for name in (MANIFEST, "bundle/toc.v1.json", "entitlements.v1.json"):
        schemas.validator(name)  # check_schema raises on a broken schema


def test_an_impossible_creation_time_is_refused():
    data = example("full")
    data["created"] = "2026-13-45T25:61:00Z"  # fits the pattern, is no date
    assert any(p.startswith("created") for p in schemas.problems(MANIFEST, data)), schemas.problems(MANIFEST, data)


def test_entitlement_examples_validate():
    files = sorted((schemas.ROOT / "examples" / "entitlements").glob("*.json"))
    assert files
    for f in files:
        assert schemas.problems("entitlements.v1.json", json.loads(f.read_text())) == [], f.name


def test_entitlement_schema_refuses_bad_input():
    problems = schemas.problems(
        "entitlements.v1.json",
        {"manifest_id": "../m", "organization": "A B", "products": [{"label": "x", "name": "X"}], "format": "v2"},
    )
    assert len(problems) == 4


def _broken(path, value):
    d = copy.deepcopy(example("full"))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return schemas.problems(MANIFEST, d)


@pytest.mark.parametrize(
    "path, value",
    [
        (["files", 0, "path"], "/etc/passwd"),
        (["files", 0, "path"], "../outside"),
        (["files", 0, "path"], "repos/a/../../b"),
        (["files", 0, "path"], "repos//b"),
        (["files", 0, "path"], "manifest.json"),
        (["files", 0, "path"], "products.csv\n"),
        (["files", 0, "sha256"], "A" * 64),
        (["files", 0, "size"], -1),
        (["source_key_fingerprint"], "md5:00"),
        (["content_view", "version"], "1"),
        (["content_view", "version"], "1.0.1"),
        (["organization"], "has space"),
        (["organization"], "a..b"),
        (["repositories", 0, "path"], "repos/../x"),
        (["repositories", 0, "target", "package_set_digest"], "sha256:xyz"),
        (["repositories", 0, "removed"], ["nothex"]),
        (["kind"], "partial"),
        (["format"], "iss-bundle/2"),
        (["created"], "yesterday"),
        (["products", 0, "content_id"], None),  # a Red Hat product needs its content id
        (["base_content_view_version"], "0.9"),  # a full bundle has no base
        (["unexpected"], 1),
    ],
)
def test_schema_refuses(path, value):
    assert _broken(path, value) != []


def test_incremental_content_view_bundle_needs_its_base():
    d = example("incremental")
    d["base_content_view_version"] = None
    assert schemas.problems(MANIFEST, d) != []


@pytest.mark.parametrize("name", ["full", "incremental"])
def test_writer_document_is_exactly_to_dict(name):
    from iss_plugin.adapters.bundles.writer import _header, manifest_bytes

    m = BundleManifest.from_dict(example(name))
    assert _header(m) == {**m.to_dict(), "files": []}
    assert manifest_bytes(m) == json.dumps(m.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def test_sealing_20000_files_holds_no_dict_or_string_per_file_at_once():
    """seal_manifest checks and encodes the file list from the FileEntry values, batch by batch into
    one buffer (issue 12: it set the source's peak RSS while planning a stream of 20,000 packages).
    Traced peak, the 4 MB manifest.json it returns included: ~17 MiB with a dict and a string per
    file plus their join and its encoding, ~12 MiB with the dicts only, ~7 MiB now."""
    import tracemalloc
    from dataclasses import replace

    from iss_plugin.adapters.bundles.signing import Signer
    from iss_plugin.adapters.bundles.writer import seal_manifest
    from iss_plugin.domain.manifest import FileEntry

    m = BundleManifest.from_dict(example("full"))
    repo = m.repositories[0]
    m = replace(m, repositories=(replace(repo, target=replace(repo.target, package_count=20000), added=20000),))
    files = [FileEntry(f"{repo.path}/Packages/p/pkg{i:05d}-1.0-1.noarch.rpm", f"{i:064x}", i) for i in range(20000)]
    signer = Signer.generate()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sealed, data, _ = seal_manifest(m, signer, files)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert json.loads(data)["files"][0] == {"path": files[0].path, "sha256": files[0].sha256, "size": 0}
    assert len(sealed.files) == 20000
    assert peak < 8.5 * 2**20, peak / 2**20
