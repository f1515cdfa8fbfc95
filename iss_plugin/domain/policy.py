"""Who may do what: the permissions, the built-in roles, and the one check every entry point uses.

Pure: an `Identity` is a value (a login and its grants), built by services/identity.py from the
database; nothing here reads anything. A grant is a set of permissions in one organization, or in
every organization (organization None). `admin` implies every permission."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import Forbidden

VIEW_PRODUCTS = "view_products"
VIEW_CONTENT_VIEWS = "view_content_views"
EXPORT_CONTENT = "export_content"
IMPORT_CONTENT = "import_content"
PUBLISH_CONTENT_VIEWS = "publish_content_views"
EDIT_PRODUCTS = "edit_products"
MANAGE_DESTINATIONS = "manage_destinations"
MANAGE_TRUST = "manage_trust"
VIEW_DASHBOARD = "view_dashboard"
ADMIN = "admin"

PERMISSIONS: tuple[str, ...] = (
    VIEW_PRODUCTS,
    VIEW_CONTENT_VIEWS,
    EXPORT_CONTENT,
    IMPORT_CONTENT,
    PUBLISH_CONTENT_VIEWS,
    EDIT_PRODUCTS,
    MANAGE_DESTINATIONS,
    MANAGE_TRUST,
    VIEW_DASHBOARD,
    ADMIN,
)

CONTENT_EXPORTER = "Content Exporter"
CONTENT_IMPORTER = "Content Importer"
VIEWER = "Viewer"
ADMINISTRATOR = "Administrator"

BUILTIN_ROLES: Mapping[str, frozenset[str]] = {
    CONTENT_EXPORTER: frozenset({VIEW_PRODUCTS, VIEW_CONTENT_VIEWS, EXPORT_CONTENT}),
    CONTENT_IMPORTER: frozenset({VIEW_PRODUCTS, VIEW_CONTENT_VIEWS, IMPORT_CONTENT}),
    VIEWER: frozenset({VIEW_PRODUCTS, VIEW_CONTENT_VIEWS, VIEW_DASHBOARD}),
    ADMINISTRATOR: frozenset({ADMIN}),
}


@dataclass(frozen=True)
class Grant:
    permissions: frozenset[str]
    organization: str | None  # None: every organization

    def covers(self, permission: str, organization: str | None) -> bool:
        if permission not in self.permissions and ADMIN not in self.permissions:
            return False
        return self.organization is None or self.organization == organization


@dataclass(frozen=True)
class Identity:
    """The acting user (or service account) and what it was granted."""

    login: str
    grants: tuple[Grant, ...] = ()

    @property
    def is_admin(self) -> bool:
        return allows(self, ADMIN, None)


def unknown_permissions(names: Iterable[str]) -> list[str]:
    """The names that are not permissions, as problems to report."""
    return [f"'{n}' is not a permission (one of: {', '.join(PERMISSIONS)})" for n in names if n not in PERMISSIONS]


def allows(identity: Identity, permission: str, organization: str | None) -> bool:
    """May `identity` do `permission` in `organization`? Organization None means a server-wide
    action (trust, destinations, users), which needs a grant in every organization."""
    return any(g.covers(permission, organization) for g in identity.grants)


def check(identity: Identity, permission: str, organization: str | None) -> None:
    """Raise Forbidden (exit 4) naming the permission, the organization, the user and the fix."""
    if allows(identity, permission, organization):
        return
    where = f"in organization '{organization}'" if organization else "in every organization (a server-wide action)"
    scope = f"--organization {organization}" if organization else "--all-organizations"
    raise Forbidden(
        f"user '{identity.login}' may not do this: permission '{permission}' {where} is missing; "
        f"ask an administrator: iss user grant --user {identity.login} --role '{role_with(permission)}' {scope}",
        details={"user": identity.login, "permission": permission, "organization": organization},
    )


def check_somewhere(identity: Identity, permission: str) -> None:
    """For listings across organizations: the permission in at least one organization."""
    if any(permission in g.permissions or ADMIN in g.permissions for g in identity.grants):
        return
    raise Forbidden(
        f"user '{identity.login}' may not do this: permission '{permission}' is granted in no organization; "
        f"ask an administrator: iss user grant --user {identity.login} --role '{role_with(permission)}' "
        "--organization ORG",
        details={"user": identity.login, "permission": permission, "organization": None},
    )


def visible_organizations(identity: Identity, permission: str) -> frozenset[str] | None:
    """The organizations in which `identity` holds `permission`; None when it holds it in all."""
    if allows(identity, permission, None):
        return None
    return frozenset(
        g.organization
        for g in identity.grants
        if g.organization is not None and (permission in g.permissions or ADMIN in g.permissions)
    )


def role_with(permission: str) -> str:
    """The smallest built-in role that holds `permission` (Administrator holds them all)."""
    holders = [name for name, perms in BUILTIN_ROLES.items() if permission in perms]
    return min(holders, key=lambda n: (len(BUILTIN_ROLES[n]), n != VIEWER)) if holders else ADMINISTRATOR
