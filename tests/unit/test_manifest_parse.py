"""reader._parse_manifest keeps each files[] entry as a FileEntry (not a dict: MiBs at 20,000 files),
and the schema check of such a manifest reports exactly what jsonschema reports for the whole
document (schemas.problems), item paths included, however deep in files[] the bad entry is."""

from __future__ import annotations

import copy
import json

import pytest

import schemas
from iss_plugin.adapters.bundles.reader import _parse_manifest, _schema_problems
from iss_plugin.domain.errors import BundleIntegrityError
from iss_plugin.domain.manifest import BundleManifest, FileEntry

MANIFEST = "bundle/manifest.v1.json"


def example(name: str = "full") -> dict:
    return json.loads((schemas.ROOT / "examples" / "bundle" / f"manifest.{name}.json").read_text())


def big(n: int = 3000) -> dict:
    """The full example with n more package files, all of them good."""
    data = example()
    repo = data["repositories"][0]["path"]
    data["files"] += [
        {"path": f"{repo}/Packages/p/p{i}-1.0-1.noarch.rpm", "sha256": f"{i:064x}", "size": i} for i in range(n)
    ]
    return data


def parsed(data: object) -> tuple[object, list[str]]:
    return _parse_manifest(json.dumps(data).encode())


def test_files_entries_are_parsed_as_file_entries_and_the_manifest_reads_the_same():
    data = big(50)
    got, duplicates = parsed(data)
    assert duplicates == []
    assert isinstance(got, dict)
    assert all(type(f) is FileEntry for f in got["files"])
    assert got["files"][-1] == FileEntry(data["files"][-1]["path"], "31".rjust(64, "0"), 49)
    assert _schema_problems(got) == [] == schemas.problems(MANIFEST, data)
    assert BundleManifest.from_dict(got) == BundleManifest.from_dict(data)


def test_objects_shaped_like_a_file_entry_outside_files_stay_objects():
    data = example()
    shaped = {"path": "a", "sha256": "b", "size": 1}
    data["extra"] = {"note": shaped, "list": [shaped, [shaped]]}
    data["files"].append({"path": shaped, "sha256": "0" * 64, "size": 1})  # one inside another
    got, _ = parsed(data)
    assert got["extra"] == data["extra"]  # dicts again
    assert got["files"][-1] == {"path": shaped, "sha256": "0" * 64, "size": 1}
    assert all(type(f) is FileEntry for f in got["files"][:-1])
    assert _schema_problems(got) == schemas.problems(MANIFEST, data) != []


def test_a_files_entry_with_other_keys_or_order_stays_an_object_and_duplicates_are_found():
    data = example()
    raw = json.dumps(data)
    entry = '{"sha256": "' + "0" * 64 + '", "path": "products.csv", "size": 1, "size": 2}'
    raw = raw.replace('"files": [', f'"files": [{entry}, ', 1)
    got, duplicates = _parse_manifest(raw.encode())
    assert duplicates == ["size"]
    assert got["files"][0] == {"sha256": "0" * 64, "path": "products.csv", "size": 2}


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "../../etc/passwd", "sha256": "0" * 64, "size": 1},
        {"path": "repos/x/y/a.rpm", "sha256": "not hex", "size": -1},
        {"path": "repos/x/y/a.rpm", "sha256": "0" * 64, "size": True},
        {"path": 7, "sha256": None, "size": "12"},
        {"path": "repos/x/y/a.rpm", "sha256": "0" * 64},
        {"path": "repos/x/y/a.rpm", "sha256": "0" * 64, "size": 1, "mode": "0644"},
        ["not", "an", "object"],
        "repos/x/y/a.rpm",
    ],
)
def test_a_bad_entry_deep_in_a_big_manifest_is_reported_with_its_path(bad):
    data = big()
    data["files"].insert(2500, bad)
    data["files"][2900]["size"] = 1.5
    data["kind"] = "sideways"  # a problem outside files[] too
    got, _ = parsed(data)
    problems = _schema_problems(got)
    assert problems == schemas.problems(MANIFEST, data)
    assert any(p.startswith("files/2500") for p in problems), problems
    assert any(p.startswith("files/2900/size: 1.5 is not of type 'integer'") for p in problems), problems
    assert "kind: 'sideways' is not one of ['full', 'incremental']" in problems


@pytest.mark.parametrize("files", [{"a": 1}, None, "x", [[{"path": "a", "sha256": "b", "size": 1}]]])
def test_a_files_member_that_is_no_array_of_objects_is_reported_as_before(files):
    data = example()
    data["files"] = files
    got, _ = parsed(data)
    assert got == data
    assert _schema_problems(got) == schemas.problems(MANIFEST, data) != []


def test_a_manifest_that_is_no_object_or_no_json():
    assert parsed([{"path": "a", "sha256": "b", "size": 1}]) == ([{"path": "a", "sha256": "b", "size": 1}], [])
    assert parsed({"path": "a", "sha256": "b", "size": 1})[0] == {"path": "a", "sha256": "b", "size": 1}
    with pytest.raises(BundleIntegrityError, match="not valid JSON"):
        _parse_manifest(b'{"files": [NaN]}')


def test_item_by_item_refuses_an_array_rule_that_looks_at_the_whole_array(monkeypatch):
    schema = copy.deepcopy(schemas.load(MANIFEST))
    schema["properties"]["files"]["minItems"] = 1
    monkeypatch.setattr(schemas, "load", lambda relative: schema)
    with pytest.raises(ValueError, match="says more than what each item is"):
        schemas.problems_item_by_item(MANIFEST, {}, "files", [])
