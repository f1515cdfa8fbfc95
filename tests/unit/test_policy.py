"""domain/policy.py and domain/trust.py: pure, no I/O."""

from __future__ import annotations

import pytest

from iss_plugin.domain import policy as P
from iss_plugin.domain.errors import EXIT_FORBIDDEN, Forbidden, UntrustedSource, UsageError
from iss_plugin.domain.trust import destination_organization, organization_map, parse_maps


def who(*grants: tuple[str, str | None]) -> P.Identity:
    """An identity holding each built-in role name in the given organization (None: all)."""
    return P.Identity("alice", tuple(P.Grant(P.BUILTIN_ROLES[role], org) for role, org in grants))


@pytest.mark.parametrize("permission", P.PERMISSIONS)
def test_every_permission_allowed_by_a_grant_of_it_and_denied_without(permission):
    holder = P.Identity("alice", (P.Grant(frozenset({permission}), "ACME"),))
    P.check(holder, permission, "ACME")
    others = [p for p in P.PERMISSIONS if p not in (permission, P.ADMIN)]
    lacking = P.Identity("alice", (P.Grant(frozenset(others), None),))
    with pytest.raises(Forbidden) as e:
        P.check(lacking, permission, "ACME")
    assert e.value.exit_code == EXIT_FORBIDDEN == 4 and e.value.reason == "forbidden"
    assert f"'{permission}'" in e.value.message and "'ACME'" in e.value.message and "'alice'" in e.value.message
    assert "iss user grant --user alice --role" in e.value.message and "--organization ACME" in e.value.message


def test_builtin_roles():
    assert P.BUILTIN_ROLES[P.CONTENT_EXPORTER] == {"view_products", "view_content_views", "export_content"}
    assert P.BUILTIN_ROLES[P.CONTENT_IMPORTER] == {"view_products", "view_content_views", "import_content"}
    assert P.BUILTIN_ROLES[P.VIEWER] == {"view_products", "view_content_views", "view_dashboard"}
    assert P.BUILTIN_ROLES[P.ADMINISTRATOR] == {"admin"}
    exporter = who((P.CONTENT_EXPORTER, "ACME"))
    assert P.allows(exporter, P.EXPORT_CONTENT, "ACME") and not P.allows(exporter, P.IMPORT_CONTENT, "ACME")
    assert not P.allows(exporter, P.PUBLISH_CONTENT_VIEWS, "ACME")


def test_admin_implies_every_permission_in_its_scope():
    everywhere = who((P.ADMINISTRATOR, None))
    assert all(P.allows(everywhere, p, org) for p in P.PERMISSIONS for org in ("ACME", "LAB", None))
    assert everywhere.is_admin
    lab_admin = who((P.ADMINISTRATOR, "LAB"))
    assert P.allows(lab_admin, P.EDIT_PRODUCTS, "LAB") and not P.allows(lab_admin, P.EDIT_PRODUCTS, "ACME")
    assert not lab_admin.is_admin  # server-wide actions need a grant in every organization


def test_a_grant_in_one_organization_does_not_reach_another():
    viewer = who((P.VIEWER, "LAB"))
    P.check(viewer, P.VIEW_PRODUCTS, "LAB")
    with pytest.raises(Forbidden, match="'ACME'"):
        P.check(viewer, P.VIEW_PRODUCTS, "ACME")
    with pytest.raises(Forbidden, match="every organization"):
        P.check(viewer, P.VIEW_PRODUCTS, None)
    assert P.visible_organizations(viewer, P.VIEW_PRODUCTS) == {"LAB"}
    assert P.visible_organizations(who((P.VIEWER, None)), P.VIEW_PRODUCTS) is None
    assert P.visible_organizations(viewer, P.EXPORT_CONTENT) == frozenset()


def test_check_somewhere():
    P.check_somewhere(who((P.VIEWER, "LAB")), P.VIEW_DASHBOARD)
    with pytest.raises(Forbidden, match="granted in no organization"):
        P.check_somewhere(who((P.CONTENT_EXPORTER, "LAB")), P.VIEW_DASHBOARD)
    with pytest.raises(Forbidden):
        P.check_somewhere(P.Identity("nobody"), P.VIEW_PRODUCTS)


def test_the_fix_names_a_role_that_holds_the_permission():
    assert P.role_with(P.EXPORT_CONTENT) == P.CONTENT_EXPORTER
    assert P.role_with(P.IMPORT_CONTENT) == P.CONTENT_IMPORTER
    assert P.role_with(P.VIEW_PRODUCTS) == P.VIEWER
    assert P.role_with(P.MANAGE_TRUST) == P.ADMINISTRATOR


def test_unknown_permissions():
    assert P.unknown_permissions(["export_content", "view_products"]) == []
    assert P.unknown_permissions(["export", "admin"]) == [
        f"'export' is not a permission (one of: {', '.join(P.PERMISSIONS)})"
    ]


# --- trust: source organization -> destination organization ------------------------------------


def test_stored_lists_are_identity_maps():
    assert organization_map(["ACME", "LAB"]) == {"ACME": "ACME", "LAB": "LAB"}
    assert organization_map({"ACME": "ACME-Lab"}) == {"ACME": "ACME-Lab"}
    assert organization_map(None) == {}


def test_parse_maps():
    assert parse_maps(["ACME"], ["QA=LAB"]) == {"ACME": "ACME", "QA": "LAB"}
    with pytest.raises(UsageError) as e:
        parse_maps(["ACME"], ["ACME=LAB", "broken", "=X"])
    assert len(e.value.problems) == 3 and "already mapped to 'ACME'" in e.value.problems[0]
    with pytest.raises(UsageError, match="at least one"):
        parse_maps([], [])


def test_destination_organization():
    assert destination_organization("src", {"ACME": "ACME-Lab"}, "ACME") == "ACME-Lab"
    with pytest.raises(UntrustedSource) as e:
        destination_organization("src", {"ACME": "ACME-Lab"}, "QA")
    assert "'QA'" in e.value.message and "'src'" in e.value.message and "ACME->ACME-Lab" in e.value.message
    assert e.value.reason == "untrusted" and "--map QA=" in e.value.message
