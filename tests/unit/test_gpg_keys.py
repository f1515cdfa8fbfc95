"""Product GPG keys on import (domain.gpg_keys): which key a product ends with, which files need it."""

from __future__ import annotations

import json

import pytest

from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.domain.gpg_keys import KeyDecision, ProductKey, decide_product_keys, packages_to_verify
from iss_plugin.domain.manifest import BundleManifest, FileEntry, ProductEntry, RepositoryEntry, VersionRef

A = ProductKey.of("-----BEGIN PGP PUBLIC KEY BLOCK-----\nA\n", ["aaaa", "bbbb"])
A_REARMORED = ProductKey.of("-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\nA\n", ["BBBB", "AAAA"])
B = ProductKey.of("-----BEGIN PGP PUBLIC KEY BLOCK-----\nB\n", ["cccc"])


def test_fingerprints_are_normalised_and_decide_equality():
    assert A.fingerprints == ("AAAA", "BBBB")
    assert A.same_key(A_REARMORED)
    assert not A.same_key(B)
    assert not A.same_key(ProductKey.of(A.armored, ["aaaa"]))  # a key with a certificate fewer differs


def test_a_new_key_is_stored_and_checked():
    assert decide_product_keys({"tools": A}, {}) == {"tools": KeyDecision("tools", A, store=True)}
    assert decide_product_keys({"tools": A}, {"tools": None})["tools"].store


def test_the_same_key_is_kept_and_checked_not_stored_again():
    decision = decide_product_keys({"tools": A_REARMORED}, {"tools": A})["tools"]
    assert decision == KeyDecision("tools", A, store=False)


def test_the_destination_key_applies_when_the_bundle_carries_none():
    assert decide_product_keys({"tools": None}, {"tools": B})["tools"] == KeyDecision("tools", B)


def test_no_key_anywhere_means_no_check():
    assert decide_product_keys({"tools": None}, {}) == {"tools": KeyDecision("tools", None)}


def test_a_different_key_is_refused_naming_every_product_and_both_fingerprints():
    with pytest.raises(ImportRuleViolation) as e:
        decide_product_keys({"tools": A, "extras": B, "fine": A}, {"tools": B, "extras": A, "fine": A})
    assert len(e.value.problems) == 2
    assert "'extras'" in e.value.problems[0] and "CCCC" in e.value.problems[0] and "AAAA" in e.value.problems[0]
    assert "'tools'" in e.value.problems[1]
    assert "set-gpg-key" in e.value.problems[1]


def _manifest(gpg_key: str | None = None) -> BundleManifest:
    def repo(product: str, label: str) -> RepositoryEntry:
        return RepositoryEntry(
            label, label, product, f"repos/{product}/{label}", "yum", VersionRef(1, 2, "sha256:" + "a" * 64)
        )

    def f(path: str) -> FileEntry:
        return FileEntry(path, "0" * 64, 1)

    return BundleManifest(
        bundle_id="b1",
        source_server="src",
        source_key_fingerprint="sha256:" + "0" * 64,
        created="2026-01-01T00:00:00Z",
        organization="ACME",
        scope="repository",
        kind="full",
        content_view=None,
        base_content_view_version=None,
        products=(ProductEntry("tools", "Tools", False, None, gpg_key), ProductEntry("other", "Other", False)),
        repositories=(repo("tools", "utils"), repo("tools", "utils2"), repo("other", "misc")),
        files=(
            f("repos/tools/utils/Packages/b/b-1.rpm"),
            f("repos/tools/utils/Packages/a/a-1.rpm"),
            f("repos/tools/utils/repodata/repomd.xml"),
            f("repos/tools/utils2/Packages/c/c-1.rpm"),
            f("repos/tools/utils22/Packages/x/x-1.rpm"),  # no such repository: not a prefix match
            f("repos/other/misc/Packages/d/d-1.rpm"),
        ),
    )


def test_packages_to_verify_are_the_rpm_files_of_keyed_products_only():
    assert packages_to_verify(_manifest(), ["tools"]) == {
        "tools": (
            "repos/tools/utils/Packages/a/a-1.rpm",
            "repos/tools/utils/Packages/b/b-1.rpm",
            "repos/tools/utils2/Packages/c/c-1.rpm",
        )
    }
    assert packages_to_verify(_manifest(), []) == {}


def test_manifest_carries_the_key_only_when_there_is_one_and_the_schema_accepts_both():
    import schemas

    without = _manifest().to_dict()
    assert "gpg_key" not in without["products"][0]
    armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"
    with_key = _manifest(armored).to_dict()
    assert with_key["products"][0]["gpg_key"] == armored
    for d in (without, with_key):
        assert schemas.problems("bundle/manifest.v1.json", json.loads(json.dumps(d))) == []
        assert BundleManifest.from_dict(d).to_dict() == d
    with_key["products"][0]["gpg_key"] = "not a key"
    assert schemas.problems("bundle/manifest.v1.json", with_key)
