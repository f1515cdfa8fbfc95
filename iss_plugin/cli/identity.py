"""Who runs this `iss` command, and the permission each command needs.

The acting identity is resolved once per process, in this order: `--user LOGIN` (the password
from ISS_PASSWORD, else prompted) > the ISS_TOKEN variable > the credentials file
`<data_dir>/credentials` that `iss init` writes (mode 0600, like Katello's installer writes
hammer's for root). `acting()` wraps every command made with cli.state.command: it resolves the
identity, checks the command's permission through domain/policy.py (the organization is the
command's --organization; server-wide commands need the permission in every organization) and
records a denial in the audit log. A command not in COMMAND_PERMISSIONS needs `admin`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, Literal, TypeVar

import click

from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden, NotAuthenticated

Scope = Literal["organization", "server", "any", "self"]
Row = TypeVar("Row", bound=Mapping[str, Any])

_CONTENT_EXPORT: dict[str, tuple[str, Scope]] = {
    f"content-export {kind} {scope}": (policy.EXPORT_CONTENT, "organization")
    for kind in ("complete", "incremental")
    for scope in ("version", "repository")
}

# "group command" -> (permission, scope). scope: "organization" (the --organization given),
# "server" (every organization), "any" (somewhere; the listing shows only the granted
# organizations), "self" (any logged-in user, for their own tokens; others' need admin).
COMMAND_PERMISSIONS: dict[str, tuple[str, Scope]] = {
    "organization create": (policy.EDIT_PRODUCTS, "server"),
    "organization list": (policy.VIEW_PRODUCTS, "any"),
    "product create": (policy.EDIT_PRODUCTS, "organization"),
    "product list": (policy.VIEW_PRODUCTS, "organization"),
    "repository create": (policy.EDIT_PRODUCTS, "organization"),
    "repository upload": (policy.EDIT_PRODUCTS, "organization"),
    "repository remove-package": (policy.EDIT_PRODUCTS, "organization"),
    "repository synchronize": (policy.EDIT_PRODUCTS, "organization"),
    "repository list": (policy.VIEW_PRODUCTS, "organization"),
    "repository info": (policy.VIEW_PRODUCTS, "organization"),
    "content-view create": (policy.PUBLISH_CONTENT_VIEWS, "organization"),
    "content-view publish": (policy.PUBLISH_CONTENT_VIEWS, "organization"),
    "content-view bless": (policy.PUBLISH_CONTENT_VIEWS, "organization"),
    "content-view list": (policy.VIEW_CONTENT_VIEWS, "organization"),
    "content-view version list": (policy.VIEW_CONTENT_VIEWS, "organization"),
    **_CONTENT_EXPORT,
    "content-import version": (policy.IMPORT_CONTENT, "organization"),
    "content-import repository": (policy.IMPORT_CONTENT, "organization"),
    "content-import sync": (policy.IMPORT_CONTENT, "organization"),
    "content-import request": (policy.IMPORT_CONTENT, "organization"),
    "destination add": (policy.MANAGE_DESTINATIONS, "server"),
    "destination update": (policy.MANAGE_DESTINATIONS, "server"),
    "destination subscribe": (policy.MANAGE_DESTINATIONS, "organization"),
    "destination list": (policy.MANAGE_DESTINATIONS, "server"),
    "reconcile": (policy.MANAGE_DESTINATIONS, "server"),
    "bus unroutable list": (policy.VIEW_DASHBOARD, "server"),
    "bus unroutable replay": (policy.MANAGE_DESTINATIONS, "server"),
    "trust add": (policy.MANAGE_TRUST, "server"),
    "trust list": (policy.MANAGE_TRUST, "server"),
    "manifest import": (policy.MANAGE_TRUST, "server"),
    "audit list": (policy.VIEW_DASHBOARD, "any"),
    "repository-set list": (policy.VIEW_PRODUCTS, "organization"),
    "repository-set enable": (policy.EDIT_PRODUCTS, "organization"),
    "repository-set disable": (policy.EDIT_PRODUCTS, "organization"),
    "repository set-url": (policy.EDIT_PRODUCTS, "organization"),
    "product set-url": (policy.EDIT_PRODUCTS, "organization"),
    "organization set-cdn": (policy.EDIT_PRODUCTS, "organization"),
    "product export": (policy.VIEW_PRODUCTS, "organization"),
    "product info": (policy.VIEW_PRODUCTS, "organization"),
    "product set-gpg-key": (policy.EDIT_PRODUCTS, "organization"),
    "repository urls": (policy.VIEW_PRODUCTS, "organization"),
    "product import": (policy.EDIT_PRODUCTS, "organization"),
    "token create": (policy.ADMIN, "self"),
    "token revoke": (policy.ADMIN, "self"),
    "token list": (policy.ADMIN, "self"),
    # user (create, list, grant, revoke-role, update, delete), role (create, list, add-permission,
    # update), store gc, relay, worker, run, watch, serve: admin (the default). Made with
    # command(..., authenticated=False), so open to anyone who can read the settings: init, db upgrade
    # (before there is a schema to hold users), keys show (the public key); demo runs its own
    # throwaway servers.
}
DEFAULT_PERMISSION: tuple[str, Scope] = (policy.ADMIN, "server")


def command_key(ctx: click.Context) -> str:
    """`content-view version list`: the command's path below the root group."""
    names = []
    c: click.Context | None = ctx
    while c is not None and c.parent is not None:
        names.append(c.info_name or "")
        c = c.parent
    return " ".join(reversed(names))


def permission_for(ctx: click.Context) -> tuple[str, Scope]:
    return COMMAND_PERMISSIONS.get(command_key(ctx), DEFAULT_PERMISSION)


def resolve(state: Any) -> policy.Identity:
    """The acting identity of this process (cached on the CLI state)."""
    from iss_plugin.services import identity

    cached: policy.Identity | None = getattr(state, "identity", None)
    if cached is not None:
        return cached
    app = state.app
    _ = app.server_id, app.engine  # a server `iss init` never set up: say that (exit 2), not "who are you?"
    login = getattr(state, "login", None)
    if login:
        password = os.environ.get("ISS_PASSWORD")
        if password is None:
            password = click.prompt(f"password for {login}", hide_input=True, err=True)
        found = identity.authenticate_password(app.uow(), login, password)
    elif os.environ.get("ISS_TOKEN"):
        found = identity.authenticate_token(app.uow(), os.environ["ISS_TOKEN"], "ISS_TOKEN")
    else:
        path = app.settings.data_dir / identity.CREDENTIALS_NAME
        token = identity.read_credentials(path)
        if token is None and not identity.has_users(app.uow()):
            raise NotAuthenticated("this server has no users yet: run `iss init` to create the first administrator")
        if token is None:
            raise NotAuthenticated(
                f"who are you? give --user LOGIN (password from ISS_PASSWORD or a prompt), set ISS_TOKEN, "
                f"or run as the owner of {path} (written by `iss init`)"
            )
        found = identity.authenticate_token(app.uow(), token, str(path))
    state.identity = found
    # the services record `settings.actor` as who did it: from now on, this identity
    app.settings = app.settings.model_copy(update={"actor": found.login})
    return found


def authorize(state: Any, permission: str, scope: Scope, organization: str | None, what: str) -> policy.Identity:
    from iss_plugin.services import audit

    who = resolve(state)
    try:
        if scope == "organization":
            policy.check(who, permission, organization)
        elif scope == "server":
            policy.check(who, permission, None)
        elif scope == "any":
            policy.check_somewhere(who, permission)
    except Forbidden as e:
        audit.record(
            state.app.uow(),
            who.login,
            "permission.denied",
            what,
            organization=organization,
            outcome="denied",
            permission=permission,
            message=e.message,
        )
        raise
    return who


def acting(f: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper cli.state.command puts around every command (inside its error handling)."""

    @wraps(f)
    def wrapper(ctx: click.Context, state: Any, *args: Any, **kwargs: Any) -> Any:
        permission, scope = permission_for(ctx)
        authorize(state, permission, scope, kwargs.get("organization"), command_key(ctx))
        return f(ctx, state, *args, **kwargs)

    return wrapper


def require_self_or_admin(state: Any, login: str | None) -> str:
    """The login a token command acts on: the caller's own, or (admins only) another's."""
    who = resolve(state)
    if login is None or login == who.login:
        return who.login
    authorize(state, policy.ADMIN, "server", None, f"token of {login}")
    return login


VIEW_PRODUCTS = policy.VIEW_PRODUCTS


def only_visible(state: Any, permission: str, rows: list[Row], key: str = "label") -> list[Row]:
    """The rows (organizations) the acting identity holds `permission` in."""
    visible = policy.visible_organizations(resolve(state), permission)
    return rows if visible is None else [r for r in rows if r[key] in visible]


def first_administrator(app: Any) -> dict[str, Any]:
    """`iss init`'s last step (unauthenticated: there is nobody to log in as yet)."""
    from iss_plugin.services import identity

    accounts = identity.Bootstrap(app.settings.export_account, app.settings.import_account)
    return identity.bootstrap(app.uow(), app.settings.data_dir / identity.CREDENTIALS_NAME, accounts)
