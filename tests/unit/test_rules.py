"""The import rules (docs/architecture.md §6) as a pure function."""

import pytest

from iss_plugin.domain.errors import BaseMismatch, ImportRuleViolation
from iss_plugin.domain.manifest import (
    BundleManifest,
    ContentViewRef,
    ProductEntry,
    RepositoryEntry,
    VersionRef,
)
from iss_plugin.domain.rules import (
    DestinationSnapshot,
    ExistingContentView,
    ExistingProduct,
    ExistingRepository,
    plan_import,
)

RH = ProductEntry("rhel-9", "RHEL 9", True, "rh-479")
CUSTOM = ProductEntry("tools", "Tools", False, None)


def manifest(products=(RH, CUSTOM), kind="full", base_cvv=None, base_digest=None, version="1.0"):
    repos = tuple(
        RepositoryEntry(
            label="r1",
            name="r1",
            product=p.label,
            path=f"repos/{p.label}/r1",
            content_type="yum",
            target=VersionRef(2, 10, "sha256:" + "b" * 64),
            base=VersionRef(1, 9, base_digest) if base_digest else None,
        )
        for p in products
    )
    return BundleManifest(
        bundle_id="b1",
        source_server="src",
        source_key_fingerprint="sha256:" + "0" * 64,
        created="2026-01-01T00:00:00Z",
        organization="ACME",
        scope="content_view_version",
        kind=kind,
        content_view=ContentViewRef("base", "Base", version),
        base_content_view_version=base_cvv,
        products=tuple(products),
        repositories=repos,
        files=(),
    )


def dest(products=(), repos=(), entitled=("rh-479",), cv=None):
    return DestinationSnapshot("ACME", tuple(products), tuple(repos), frozenset(entitled), cv)


def test_full_import_into_empty_destination_creates_products_and_import_only_view():
    plan = plan_import(manifest(), dest())
    assert not plan.already_imported
    assert {p[0] for p in plan.create_products} == {"rhel-9", "tools"}
    assert plan.create_content_view
    assert all(p.create_repository for p in plan.placements)


def test_redhat_repository_matches_redhat_product_by_content_id_not_label():
    local = ExistingProduct("rhel9-local-label", True, "rh-479")
    plan = plan_import(manifest(products=(RH,)), dest(products=[local]))
    assert plan.placements[0].product == "rhel9-local-label"
    assert plan.create_products == ()


def test_redhat_content_never_enters_a_custom_product():
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(RH,)), dest(products=[ExistingProduct("rhel-9", False, None)]))
    assert "cannot go into the custom product 'rhel-9'" in e.value.problems[0]


def test_custom_content_never_enters_a_redhat_product():
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(CUSTOM,)), dest(products=[ExistingProduct("tools", True, "rh-1")]))
    assert "custom content cannot go into the Red Hat product 'tools'" in e.value.problems[0]


def test_redhat_repository_without_entitlement_is_refused():
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(RH,)), dest(entitled=()))
    assert "not entitled to Red Hat content id rh-479" in e.value.problems[0]


def test_all_problems_are_reported_together():
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(), dest(products=[ExistingProduct("tools", True, "rh-1")], entitled=()))
    assert len(e.value.problems) == 2


def test_existing_view_that_is_not_import_only_conflicts():
    cv = ExistingContentView("base", import_only=False, composite=False, versions={})
    with pytest.raises(ImportRuleViolation, match="import rules") as e:
        plan_import(manifest(), dest(cv=cv))
    assert "is not import-only" in e.value.problems[0]


def test_composite_view_cannot_be_imported():
    cv = ExistingContentView("base", import_only=True, composite=True, versions={})
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(), dest(cv=cv))
    assert "composite" in e.value.problems[0]


def test_existing_version_is_a_no_op():
    held = {"rhel-9/r1": "sha256:" + "b" * 64, "tools/r1": "sha256:" + "b" * 64}
    cv = ExistingContentView("base", import_only=True, composite=False, versions={"1.0": held})
    assert plan_import(manifest(), dest(cv=cv)).already_imported


def test_content_type_must_match():
    repos = [ExistingRepository("tools", "r1", "file", None)]
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(CUSTOM,)), dest(products=[ExistingProduct("tools", False, None)], repos=repos))
    assert "is file here but yum in the bundle" in e.value.problems[0]


def test_incremental_without_its_base_says_what_the_destination_has():
    cv = ExistingContentView(
        "base", import_only=True, composite=False, versions={"1.0": {"tools/r1": "sha256:" + "c" * 64}}
    )
    m = manifest(
        products=(CUSTOM,), kind="incremental", base_cvv="2.0", base_digest="sha256:" + "a" * 64, version="3.0"
    )
    with pytest.raises(BaseMismatch) as e:
        plan_import(m, dest(products=[ExistingProduct("tools", False, None)], cv=cv))
    assert e.value.details["has"]["content_view_versions"] == ["1.0"]
    assert "version 2.0 (the base of this incremental) is not here; this server has 1.0" in e.value.problems[0]


def test_incremental_on_a_base_with_other_content_is_a_mismatch():
    cv = ExistingContentView("base", True, False, versions={"1.0": {"tools/r1": "sha256:" + "c" * 64}})
    m = manifest(
        products=(CUSTOM,), kind="incremental", base_cvv="1.0", base_digest="sha256:" + "a" * 64, version="2.0"
    )
    with pytest.raises(BaseMismatch) as e:
        plan_import(
            m,
            dest(
                products=[ExistingProduct("tools", False, None)],
                repos=[ExistingRepository("tools", "r1", "yum", None)],
                cv=cv,
            ),
        )
    assert "needs base sha256:aaaa" in e.value.problems[0]


def test_incremental_on_its_base_is_planned():
    digest = "sha256:" + "a" * 64
    cv = ExistingContentView("base", True, False, versions={"1.0": {"tools/r1": digest}})
    m = manifest(products=(CUSTOM,), kind="incremental", base_cvv="1.0", base_digest=digest, version="2.0")
    plan = plan_import(
        m,
        dest(
            products=[ExistingProduct("tools", False, None)],
            repos=[ExistingRepository("tools", "r1", "yum", None)],
            cv=cv,
        ),
    )
    assert not plan.already_imported and not plan.create_content_view


def test_redhat_label_held_by_another_content_id_is_a_rule_problem():
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(RH,)), dest(products=[ExistingProduct("rhel-9", True, "rh-1")]))
    assert "held here by the Red Hat product with content id rh-1" in e.value.problems[0]


def test_existing_version_with_other_content_is_refused_not_a_no_op():
    cv = ExistingContentView("base", True, False, versions={"1.0": {"tools/r1": "sha256:" + "c" * 64}})
    with pytest.raises(ImportRuleViolation) as e:
        plan_import(manifest(products=(CUSTOM,)), dest(products=[ExistingProduct("tools", False, None)], cv=cv))
    assert "exists here with other content" in e.value.problems[0]
