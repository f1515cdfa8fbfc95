"""user, role, token and audit commands; the first administrator made by `iss init`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import click

from iss_plugin.domain import policy
from iss_plugin.domain.errors import UsageError

from .identity import require_self_or_admin, resolve
from .output import emit
from .state import command

Ctx = click.Context
Out = str | None


def _parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since '{text}' is not an ISO date or date-time (for example 2026-11-01T12:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _scope(organization: str | None, all_organizations: bool) -> str | None:
    if bool(organization) == all_organizations:
        raise UsageError("give --organization ORG or --all-organizations (exactly one)")
    return organization


@click.group()
def user() -> None:
    """Users and what they are granted (administrators only)."""


@command(user, "create")
@click.option("--login", required=True)
@click.option("--admin", is_flag=True, help="an administrator (every permission everywhere)")
@click.option("--service-account", is_flag=True, help="no password: acts through tokens (workers, scripts)")
def user_create(ctx: Ctx, state: Any, output: Out, login: str, admin: bool, service_account: bool) -> None:
    """Create a user; the password is prompted (or ISS_NEW_PASSWORD) unless --service-account."""
    from iss_plugin.services import identity

    password = None
    if not service_account:
        password = os.environ.get("ISS_NEW_PASSWORD") or click.prompt(
            f"new password for {login}", hide_input=True, confirmation_prompt=True, err=True
        )
    emit(
        ctx,
        identity.create_user(
            state.app.uow(), login, password, state.app.settings.actor, admin=admin, service_account=service_account
        ),
    )


@command(user, "list")
def user_list(ctx: Ctx, state: Any, output: Out) -> None:
    from iss_plugin.services import identity

    emit(ctx, identity.list_users(state.app.uow()))


@command(user, "grant")
@click.option("--user", "login", required=True)
@click.option("--role", required=True)
@click.option("--organization", help="the organization the role applies in")
@click.option("--all-organizations", is_flag=True, help="the role applies in every organization")
def user_grant(
    ctx: Ctx, state: Any, output: Out, login: str, role: str, organization: str | None, all_organizations: bool
) -> None:
    from iss_plugin.services import identity

    org = _scope(organization, all_organizations)
    emit(ctx, identity.grant_role(state.app.uow(), login, role, org, state.app.settings.actor))


@command(user, "revoke-role")
@click.option("--user", "login", required=True)
@click.option("--role", required=True)
@click.option("--organization")
@click.option("--all-organizations", is_flag=True)
def user_revoke_role(
    ctx: Ctx, state: Any, output: Out, login: str, role: str, organization: str | None, all_organizations: bool
) -> None:
    from iss_plugin.services import identity

    org = _scope(organization, all_organizations)
    emit(ctx, identity.revoke_role(state.app.uow(), login, role, org, state.app.settings.actor))


@command(user, "update")
@click.option("--login", required=True)
@click.option(
    "--disable/--enable",
    "disable",
    default=None,
    help="refuse (or allow again) the user's password, tokens and dashboard sessions, from the next request; "
    "disabling ends its dashboard sessions for good",
)
@click.option(
    "--password",
    "new_password",
    is_flag=True,
    help="set a new password (prompted twice, or ISS_NEW_PASSWORD); ends the user's dashboard sessions",
)
def user_update(ctx: Ctx, state: Any, output: Out, login: str, disable: bool | None, new_password: bool) -> None:
    """Disable or enable a user (grants and tokens are kept: enabling restores them; dashboard
    sessions are not: the user logs in again), or give it a new password."""
    from iss_plugin.services import identity

    if disable is None and not new_password:
        raise UsageError(
            f"user update --login {login}: give --disable or --enable, and/or --password; nothing was changed"
        )
    password = None
    if new_password:
        password = os.environ.get("ISS_NEW_PASSWORD") or click.prompt(
            f"new password for {login}", hide_input=True, confirmation_prompt=True, err=True
        )
    emit(
        ctx, identity.update_user(state.app.uow(), login, state.app.settings.actor, disabled=disable, password=password)
    )


@command(user, "delete")
@click.option("--login", required=True)
def user_delete(ctx: Ctx, state: Any, output: Out, login: str) -> None:
    """Delete a user, its grants and its tokens; its audit entries stay (they name the login)."""
    from iss_plugin.services import identity

    emit(ctx, identity.delete_user(state.app.uow(), login, state.app.settings.actor, worker_accounts(state)))


def worker_accounts(state: Any) -> dict[str, str]:
    from iss_plugin.services import identity

    settings = state.app.settings
    return identity.worker_accounts(settings.export_account, settings.import_account)


@click.group()
def role() -> None:
    """Roles: named sets of permissions (administrators only)."""


@command(role, "create")
@click.option("--name", required=True)
@click.option("--permission", "permissions", multiple=True, help=f"one of: {', '.join(policy.PERMISSIONS)}")
def role_create(ctx: Ctx, state: Any, output: Out, name: str, permissions: tuple[str, ...]) -> None:
    from iss_plugin.services import identity

    emit(ctx, identity.create_role(state.app.uow(), name, tuple(permissions), state.app.settings.actor))


@command(role, "list")
def role_list(ctx: Ctx, state: Any, output: Out) -> None:
    from iss_plugin.services import identity

    emit(ctx, identity.list_roles(state.app.uow()))


@command(role, "add-permission")
@click.option("--name", required=True, help="the role")
@click.option("--permission", required=True, help=f"one of: {', '.join(policy.PERMISSIONS)}")
def role_add_permission(ctx: Ctx, state: Any, output: Out, name: str, permission: str) -> None:
    from iss_plugin.services import identity

    emit(ctx, identity.add_permission(state.app.uow(), name, permission, state.app.settings.actor))


@command(role, "update")
@click.option("--name", required=True, help="the role")
@click.option("--add-permission", "add", multiple=True, help="repeatable; one of the permissions above")
@click.option("--remove-permission", "remove", multiple=True, help="repeatable")
def role_update(ctx: Ctx, state: Any, output: Out, name: str, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Add and remove permissions of a role (not a built-in one); every holder has them at once."""
    from iss_plugin.services import identity

    emit(ctx, identity.update_role(state.app.uow(), name, tuple(add), tuple(remove), state.app.settings.actor))


@click.group()
def token() -> None:
    """API tokens (ISS_TOKEN): your own, or anyone's for administrators."""


@command(token, "create")
@click.option("--user", "login", help="whose token (default: yours; another's needs admin)")
@click.option("--name", help="a name to revoke it by (default: made from the time)")
@click.option("--expires-days", type=float, help="valid for this many days (default: until revoked)")
def token_create(
    ctx: Ctx, state: Any, output: Out, login: str | None, name: str | None, expires_days: float | None
) -> None:
    """Print a new token, once: it is stored only as a hash."""
    from iss_plugin.services import identity

    login = require_self_or_admin(state, login)
    emit(ctx, identity.create_token(state.app.uow(), login, name, expires_days, state.app.settings.actor))


@command(token, "revoke")
@click.option("--user", "login", help="whose token (default: yours)")
@click.option("--name", required=True)
def token_revoke(ctx: Ctx, state: Any, output: Out, login: str | None, name: str) -> None:
    from iss_plugin.services import identity

    login = require_self_or_admin(state, login)
    emit(ctx, identity.revoke_token(state.app.uow(), login, name, state.app.settings.actor))


@command(token, "list")
@click.option("--user", "login", help="whose tokens (default: yours)")
def token_list(ctx: Ctx, state: Any, output: Out, login: str | None) -> None:
    from iss_plugin.services import identity

    login = require_self_or_admin(state, login)
    emit(ctx, identity.list_tokens(state.app.uow(), login))


@click.group("audit")
def audit_group() -> None:
    """The audit log: who did what, when, where, with which outcome."""


@command(audit_group, "list")
@click.option("--since", help="only entries at or after this ISO date/time")
@click.option("--organization", "org_filter", help="only entries of this organization")
@click.option("--action", help="only this action (content.import), or a prefix ending in '.' (user.)")
@click.option("--limit", default=1000, show_default=True)
def audit_list(
    ctx: Ctx, state: Any, output: Out, since: str | None, org_filter: str | None, action: str | None, limit: int
) -> None:
    """Newest first; users who are not granted every organization see their organizations' entries."""
    from iss_plugin.services import audit

    who = resolve(state)
    visible = policy.visible_organizations(who, policy.VIEW_DASHBOARD)
    if org_filter is not None:
        policy.check(who, policy.VIEW_DASHBOARD, org_filter)
    rows = audit.list_audit(
        state.app.uow(),
        since=_parse_since(since),
        organization=org_filter,
        action=action,
        organizations=visible,
        limit=limit,
    )
    emit(ctx, rows, columns=["at", "actor", "action", "target", "organization", "outcome"])


COMMANDS: tuple[click.Command, ...] = (user, role, token, audit_group)
