"""Users, roles, grants and API tokens; authentication; the first administrator.

Passwords are hashed with argon2 (argon2-cffi); tokens are 32 random bytes (urlsafe) of which only
the sha256 is stored. Every change is audited in its own transaction; so is every login failure."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.identity_models import ApiToken, Role, RolePermission, User, UserRole
from iss_plugin.adapters.db.memo import transaction_memo
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden, NotAuthenticated, NotFound, UsageError
from iss_plugin.domain.labels import check_label

from .audit import audit, record

ADMIN_LOGIN = "admin"
DEFAULT_EXPORT_ACCOUNT = "iss-export"
DEFAULT_IMPORT_ACCOUNT = "iss-import"
CREDENTIALS_NAME = "credentials"

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def hash_password(password: str) -> str:
    return PasswordHasher().hash(password)


@functools.cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def password_matches(stored: str | None, password: str) -> bool:
    """One argon2 verification whatever the user (an unknown login takes as long as a known one)."""
    try:
        return PasswordHasher().verify(stored or _decoy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- reading identities ----------------------------------------------------------------------------


def identity_of(user: User) -> policy.Identity:
    """The user's grants as a policy value (a disabled user has none; the admin flag is a grant everywhere)."""
    if user.disabled:
        return policy.Identity(user.login)
    grants = [policy.Grant(frozenset({policy.ADMIN}), None)] if user.admin else []
    grants += [
        policy.Grant(frozenset(p.permission for p in ur.role.permissions), ur.organization)
        for ur in sorted(user.roles, key=lambda r: (r.organization or "", r.role.name))
    ]
    return policy.Identity(user.login, tuple(grants))


def load_identity(session: Session, login: str) -> policy.Identity:
    """A service account's identity, read afresh (a grant or revocation applies to the next message)."""
    user = session.scalar(select(User).where(User.login == login))
    return identity_of(user) if user is not None else policy.Identity(login)


def has_users(uow: UnitOfWork) -> bool:
    with uow:
        return uow.session.scalar(select(User.id).limit(1)) is not None


def _user(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound(f"no user '{login}' (see `iss user list`)")
    return user


def _role(session: Session, name: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise NotFound(f"no role '{name}' (see `iss role list`)")
    return role


# --- authentication --------------------------------------------------------------------------------


def authenticate_password(uow: UnitOfWork, login: str, password: str, *, address: str | None = None) -> policy.Identity:
    """`address`: the web client's address, recorded with a failure (the CLI has none)."""
    return password_session(uow, login, password, address=address)[0]


def password_session(
    uow: UnitOfWork, login: str, password: str, *, address: str | None = None
) -> tuple[policy.Identity, str]:
    """`authenticate_password`, and the stamp of a dashboard session read in the same transaction
    (a password change or disable committed meanwhile cannot leave a session of the old generation)."""
    with uow:
        user = uow.session.scalar(select(User).where(User.login == login))
        matches = password_matches(user.password_hash if user is not None else None, password)
        ok = user is not None and not user.disabled and matches
        identity = identity_of(user) if ok and user is not None else None
        stamp = _stamp(user) if identity is not None and user is not None else ""
    if identity is None:
        where = {"address": address} if address is not None else {}
        record(uow, login, "login.failed", login, outcome="denied", method="password", **where)
        raise NotAuthenticated(
            f"login as '{login}' failed: wrong password, unknown or disabled user; "
            "check the login and password (ISS_PASSWORD for scripts)"
        )
    return identity, stamp


def authenticate_token(uow: UnitOfWork, token: str, where: str) -> policy.Identity:
    """`where` says where the token came from (ISS_TOKEN, the credentials file), for the message."""
    now = _now()
    with uow:
        row = uow.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        problem = None
        if row is None:
            problem = "unknown token"
        elif row.revoked_at is not None:
            problem = f"token '{row.name}' of user '{row.user.login}' was revoked"
        elif row.expires is not None and _aware(row.expires) <= now:
            problem = f"token '{row.name}' of user '{row.user.login}' expired"
        elif row.user.disabled:
            problem = f"user '{row.user.login}' is disabled"
        if row is not None and problem is None:
            row.last_used = now
            identity = identity_of(row.user)
            uow.commit()
            return identity
        actor = row.user.login if row is not None else "(unknown token)"
    record(uow, actor, "login.failed", where, outcome="denied", method="token", problem=problem)
    raise NotAuthenticated(f"the token from {where} does not work: {problem}; log in with --user LOGIN or a new token")


# --- users -----------------------------------------------------------------------------------------


def create_user(
    uow: UnitOfWork,
    login: str,
    password: str | None,
    actor: str,
    *,
    admin: bool = False,
    service_account: bool = False,
) -> dict[str, Any]:
    check_label(login, what="login")
    with uow:
        if uow.session.scalar(select(User).where(User.login == login)) is not None:
            raise UsageError(f"user '{login}' already exists; nothing was changed")
        uow.session.add(
            User(
                login=login,
                password_hash=hash_password(password) if password else None,
                admin=admin,
                service_account=service_account,
            )
        )
        audit(uow.session, actor, "user.create", login, admin=admin, service_account=service_account)
        uow.commit()
    return {"login": login, "admin": admin, "service_account": service_account, "password": password is not None}


def list_users(uow: UnitOfWork) -> list[dict[str, Any]]:
    with uow:
        return [
            {
                "login": u.login,
                "admin": u.admin,
                "service_account": u.service_account,
                "disabled": u.disabled,
                "roles": [f"{r.role.name}@{r.organization or '*'}" for r in u.roles],
            }
            for u in uow.session.scalars(select(User).order_by(User.login))
        ]


def grant_role(uow: UnitOfWork, login: str, role_name: str, organization: str | None, actor: str) -> dict[str, Any]:
    with uow:
        user, role = _user(uow.session, login), _role(uow.session, role_name)
        if organization is not None:
            find.organization(uow.session, organization)  # NotFound (exit 2) for a typo
        held = any(r.role_id == role.id and r.organization == organization for r in user.roles)
        if not held:
            user.roles.append(UserRole(role=role, organization=organization))
            audit(uow.session, actor, "user.grant", login, organization=organization, role=role_name)
        uow.commit()
        return {"login": login, "role": role_name, "organization": organization or "*", "changed": not held}


def revoke_role(uow: UnitOfWork, login: str, role_name: str, organization: str | None, actor: str) -> dict[str, Any]:
    with uow:
        user, role = _user(uow.session, login), _role(uow.session, role_name)
        held = [r for r in user.roles if r.role_id == role.id and r.organization == organization]
        if not held:
            where = f"organization '{organization}'" if organization else "every organization"
            raise NotFound(f"user '{login}' does not hold role '{role_name}' in {where} (see `iss user list`)")
        for r in held:
            user.roles.remove(r)
        if policy.ADMIN in {p.permission for p in role.permissions}:
            _keep_an_administrator(uow.session, f"revoking role '{role_name}' from '{login}'")
        audit(uow.session, actor, "user.revoke", login, organization=organization, role=role_name)
        uow.commit()
        return {"login": login, "role": role_name, "organization": organization or "*", "changed": True}


def session_stamp(uow: UnitOfWork, login: str) -> str:
    """What a dashboard session records besides the login: the user's id and creation time, so a
    cookie of a deleted user never authenticates a later user of the same login (SQLite may
    reuse the id), and its session generation, so a cookie issued before the user was disabled or
    its password changed never works again (a counter, not a time: no clock to trust)."""
    with uow:
        return _stamp(_user(uow.session, login))


def _identity_stamp(user: User) -> str:
    return f"{user.id}/{_aware(user.created).isoformat()}"


def _stamp(user: User) -> str:
    return f"{_identity_stamp(user)}/{user.session_generation}"


def _same_user(stamp: str | None, user: User) -> bool:
    """The stamp names this user (of any generation; or none: a cookie issued before migration 0012)."""
    head = _identity_stamp(user)
    return stamp is not None and (stamp == head or stamp.startswith(head + "/"))


def _end_sessions(user: User) -> None:
    """Every dashboard session cookie issued to `user` so far is refused from now on, for good."""
    user.session_generation += 1


def authenticate_session(uow: UnitOfWork, login: str, stamp: str | None) -> policy.Identity:
    """The identity of a signed session cookie, read afresh on every request: refused (and
    audited) once its user is disabled or deleted, and for good once the user was disabled or its
    password changed after the cookie was issued (a stamp of an older generation, or one without
    a generation: issued before migration 0012)."""
    with uow:
        user = uow.session.scalar(select(User).where(User.login == login))
        problem = None
        if user is None or not _same_user(stamp, user):
            problem = f"user '{login}' no longer exists"
        elif user.disabled:
            problem = f"user '{login}' is disabled"
        elif stamp != _stamp(user):
            problem = f"user '{login}' was disabled or its password changed since this session began"
        if user is not None and problem is None:
            return identity_of(user)
    record(uow, login, "login.failed", login, outcome="denied", method="session", problem=problem)
    raise NotAuthenticated(f"your session ended: {problem}; log in again (or ask an administrator)")


def _enabled_administrators(session: Session) -> list[str]:
    users = session.scalars(select(User).where(User.disabled.is_(False)).order_by(User.login))
    return [u.login for u in users if identity_of(u).is_admin]


def _keep_an_administrator(session: Session, change: str) -> None:
    """Raise (the caller's unit of work rolls back) when `change`, flushed, leaves no enabled administrator."""
    session.flush()
    if not _enabled_administrators(session):
        raise UsageError(
            f"{change} would leave this server without an enabled administrator; nothing was changed. "
            "Make another administrator first: iss user create --login NAME --admin "
            "(or iss user grant --user NAME --role Administrator --all-organizations)"
        )


def _refuse_self(login: str, actor: str, verb: str) -> None:
    if login == actor:
        raise UsageError(
            f"you cannot {verb} yourself ('{login}'); nothing was changed. "
            f"Log in as another administrator to {verb} '{login}'"
        )


def set_user_disabled(uow: UnitOfWork, login: str, disabled: bool, actor: str) -> dict[str, Any]:
    """Disable (or enable again) a user: `update_user` with `disabled` alone."""
    return update_user(uow, login, actor, disabled=disabled)


def update_user(
    uow: UnitOfWork, login: str, actor: str, *, disabled: bool | None = None, password: str | None = None
) -> dict[str, Any]:
    """Disable (or enable again) a user and/or give it a new password, in one transaction.

    A disabled user's password, tokens and dashboard sessions are refused from the next request on
    (each is checked against the database every time); its grants and tokens are kept, so enabling
    restores them, but not its sessions: disabling ends them for good (the user logs in again).
    A new password ends every dashboard session of the user too, as Django and Rails do; its API
    tokens keep working (revoke them with `iss token revoke`). Refused, nothing changed: disabling
    yourself or the last enabled administrator, an empty password, a password for a service
    account."""
    if disabled is None and password is None:
        raise UsageError(f"user '{login}': nothing to update (disable, enable or a new password); nothing was changed")
    if disabled:
        _refuse_self(login, actor, "disable")
    if password is not None and not password:
        raise UsageError(f"the new password of '{login}' is empty; nothing was changed")
    new_hash = hash_password(password) if password is not None else None  # argon2 outside the transaction
    with uow:
        user = _user(uow.session, login)
        done: dict[str, Any] = {"login": login}
        if new_hash is not None:
            if user.service_account:
                raise UsageError(
                    f"user '{login}' is a service account: it acts through API tokens and has no password; "
                    f"nothing was changed (make a token: iss token create --user {login})"
                )
            user.password_hash = new_hash
            _end_sessions(user)
            audit(uow.session, actor, "user.password", login)
            done["password_changed"] = True
        if disabled is not None:
            changed = user.disabled != disabled
            if changed:
                user.disabled = disabled
                if disabled:
                    _end_sessions(user)
                    _keep_an_administrator(uow.session, f"disabling '{login}'")
                audit(uow.session, actor, "user.disable" if disabled else "user.enable", login)
            done |= {"disabled": disabled, "changed": changed}
        uow.commit()
        return done


def worker_accounts(export_account: str, import_account: str) -> dict[str, str]:
    """The service accounts the workers act as (login -> the setting naming it): not deletable."""
    return {import_account: "import_account", export_account: "export_account"}


def delete_user(uow: UnitOfWork, login: str, actor: str, protected: Mapping[str, str]) -> dict[str, Any]:
    """Delete a user with its grants and tokens. The audit log keeps its rows (they hold the login as
    text). Refused for yourself, for the last enabled administrator, and for the service accounts
    the workers act as (`protected`: login -> the setting that names it)."""
    _refuse_self(login, actor, "delete")
    if login in protected:
        setting = protected[login]
        raise UsageError(
            f"user '{login}' is the service account a worker acts as (setting {setting}); nothing was changed. "
            f"Set {setting} to another account and restart the workers first, "
            f"or stop it acting with: iss user update --login {login} --disable"
        )
    with uow:
        user = _user(uow.session, login)
        roles = sorted(f"{r.role.name}@{r.organization or '*'}" for r in user.roles)
        tokens = list(uow.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))
        for t in tokens:
            uow.session.delete(t)
        uow.session.delete(user)
        _keep_an_administrator(uow.session, f"deleting '{login}'")
        names = sorted(t.name for t in tokens)
        audit(uow.session, actor, "user.delete", login, admin=user.admin, roles=roles, tokens=names)
        uow.commit()
    return {"login": login, "deleted": True, "roles_removed": roles, "tokens_deleted": names}


# --- roles -----------------------------------------------------------------------------------------


def create_role(uow: UnitOfWork, name: str, permissions: tuple[str, ...], actor: str) -> dict[str, Any]:
    if not name.strip():
        raise UsageError("a role needs a name")
    problems = policy.unknown_permissions(permissions)
    if problems:
        raise UsageError("unknown permission; nothing was changed", problems)
    with uow:
        if uow.session.scalar(select(Role).where(Role.name == name)) is not None:
            raise UsageError(
                f"role '{name}' already exists; nothing was changed (add permissions with role add-permission)"
            )
        uow.session.add(Role(name=name, permissions=[RolePermission(permission=p) for p in sorted(set(permissions))]))
        audit(uow.session, actor, "role.create", name, permissions=sorted(set(permissions)))
        uow.commit()
    return {"name": name, "builtin": False, "permissions": sorted(set(permissions))}


def list_roles(uow: UnitOfWork) -> list[dict[str, Any]]:
    with uow:
        return [
            {"name": r.name, "builtin": r.builtin, "permissions": [p.permission for p in r.permissions]}
            for r in uow.session.scalars(select(Role).order_by(Role.name))
        ]


def add_permission(uow: UnitOfWork, name: str, permission: str, actor: str) -> dict[str, Any]:
    problems = policy.unknown_permissions([permission])
    if problems:
        raise UsageError("unknown permission; nothing was changed", problems)
    with uow:
        role = _role(uow.session, name)
        if role.builtin:
            raise UsageError(f"role '{name}' is built in and cannot change; create your own with `iss role create`")
        if permission not in {p.permission for p in role.permissions}:
            role.permissions.append(RolePermission(permission=permission))
            audit(uow.session, actor, "role.add_permission", name, permission=permission)
        uow.commit()
        return {"name": name, "builtin": False, "permissions": sorted(p.permission for p in role.permissions)}


def update_role(
    uow: UnitOfWork, name: str, add: tuple[str, ...], remove: tuple[str, ...], actor: str
) -> dict[str, Any]:
    """Add and remove permissions of a role you made (the built-in roles are locked, as Foreman's
    are). Every holder has the new set from its next request or message: grants are read from the
    database per request, command and worker transaction, never cached beyond one."""
    if not add and not remove:
        raise UsageError("give --add-permission and/or --remove-permission; nothing was changed")
    problems = policy.unknown_permissions(sorted(set(add) | set(remove)))
    problems += [f"'{p}' is both added and removed" for p in sorted(set(add) & set(remove))]
    if problems:
        raise UsageError(f"role '{name}' was not changed", problems)
    with uow:
        role = _role(uow.session, name)
        if role.builtin:
            raise UsageError(
                f"role '{name}' is built in and cannot change; nothing was changed. "
                f"Create your own: iss role create --name NAME --permission ... (see `iss role list` for '{name}')"
            )
        held = {p.permission for p in role.permissions}
        added, removed = sorted(set(add) - held), sorted(set(remove) & held)
        role.permissions = [p for p in role.permissions if p.permission not in removed]
        role.permissions += [RolePermission(permission=p) for p in added]
        if added or removed:
            if policy.ADMIN in removed:
                _keep_an_administrator(uow.session, f"removing 'admin' from role '{name}'")
            audit(uow.session, actor, "role.update", name, added=added, removed=removed)
        uow.commit()
        permissions = sorted((held | set(added)) - set(removed))
        return {"name": name, "builtin": False, "permissions": permissions, "added": added, "removed": removed}


# --- tokens ----------------------------------------------------------------------------------------


def create_token(
    uow: UnitOfWork, login: str, name: str | None, expires_days: float | None, actor: str
) -> dict[str, Any]:
    """A new token (returned once, never stored in clear)."""
    if expires_days is not None and not expires_days > 0:
        raise UsageError(f"--expires-days {expires_days}: give a positive number of days")
    token = secrets.token_urlsafe(32)
    now = _now()
    expires = now + timedelta(days=expires_days) if expires_days is not None else None
    with uow:
        user = _user(uow.session, login)
        name = name or f"token-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        if uow.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == name)):
            raise UsageError(f"user '{login}' already has a token named '{name}'; choose another --name")
        uow.session.add(ApiToken(user=user, name=name, token_hash=token_hash(token), created=now, expires=expires))
        audit(uow.session, actor, "token.create", f"{login}/{name}", expires=expires.isoformat() if expires else None)
        uow.commit()
    return {"user": login, "name": name, "expires": expires, "token": token}


def revoke_token(uow: UnitOfWork, login: str, name: str, actor: str) -> dict[str, Any]:
    with uow:
        user = _user(uow.session, login)
        row = uow.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == name))
        if row is None:
            raise NotFound(f"user '{login}' has no token named '{name}' (see `iss token list`)")
        if row.revoked_at is None:
            row.revoked_at = _now()
            audit(uow.session, actor, "token.revoke", f"{login}/{name}")
        uow.commit()
        return {"user": login, "name": name, "revoked_at": row.revoked_at}


def list_tokens(uow: UnitOfWork, login: str | None) -> list[dict[str, Any]]:
    with uow:
        q = select(ApiToken).join(User).order_by(User.login, ApiToken.name)
        if login is not None:
            q = q.where(User.login == login)
        return [
            {
                "user": t.user.login,
                "name": t.name,
                "created": t.created,
                "expires": t.expires,
                "revoked_at": t.revoked_at,
                "last_used": t.last_used,
            }
            for t in uow.session.scalars(q)
        ]


# --- the first administrator (iss init) ------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    export_account: str = DEFAULT_EXPORT_ACCOUNT
    import_account: str = DEFAULT_IMPORT_ACCOUNT


def bootstrap(uow: UnitOfWork, credentials: Path, accounts: Bootstrap = Bootstrap()) -> dict[str, Any]:
    """The administrator `admin` (a random password, returned once, and a token written to
    `credentials`, mode 0600) and the export/import service accounts. Refuses when an
    administrator exists: iss init does not reset anyone's password."""
    with uow:
        existing = uow.session.scalar(select(User.login).where(User.admin.is_(True)).limit(1))
    if existing is not None:
        raise UsageError(
            f"this server already has an administrator ('{existing}'); iss init creates only the first one. "
            "To upgrade the schema run `iss db upgrade`; to add users log in as an administrator: `iss user create`"
        )
    password = secrets.token_urlsafe(18)
    actor = "iss-init"
    create_user(uow, ADMIN_LOGIN, password, actor, admin=True)
    for login, role in (
        (accounts.export_account, policy.CONTENT_EXPORTER),
        (accounts.import_account, policy.CONTENT_IMPORTER),
    ):
        with uow:
            known = uow.session.scalar(select(User).where(User.login == login)) is not None
        if not known:
            create_user(uow, login, None, actor, service_account=True)
        grant_role(uow, login, role, None, actor)
    token = create_token(uow, ADMIN_LOGIN, "credentials-file", None, actor)["token"]
    write_credentials(credentials, token)
    return {
        "admin_login": ADMIN_LOGIN,
        "admin_password": password,
        "credentials": str(credentials),
        "service_accounts": [accounts.export_account, accounts.import_account],
        "log_in": f"as root: commands read {credentials}; elsewhere: --user {ADMIN_LOGIN} (password above) "
        f"or ISS_TOKEN=<token from `iss token create`>",
    }


def write_credentials(path: Path, token: str) -> None:
    """The administrator's token, readable by its owner only (as Katello's installer writes hammer's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"token = {token}\n")
    os.chmod(path, 0o600)


def read_credentials(path: Path) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"cannot read the credentials file {path}: {e}; log in with --user LOGIN") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "token" and value.strip():
            return value.strip()
    raise UsageError(f"the credentials file {path} holds no `token = ...` line; log in with --user LOGIN")


def authorize_account(uow: UnitOfWork, login: str, permission: str, organization: str | None) -> None:
    """A worker's check, inside the caller's unit of work: Forbidden (reason `forbidden`) when the
    service account `login` lacks `permission` in `organization`. The denial is audited with the
    caller's transaction, or after it rolled back (SQLite allows one writer: not from a second
    session while it is open). A grant is read once per transaction (a fan-out to a hundred
    subscriptions asks a hundred times), so a revoke committed elsewhere meanwhile applies from
    the account's next transaction; a refusal is checked and audited every time."""
    key = ("authorized", login, permission, organization)
    if key in transaction_memo(uow.session):
        return
    who = load_identity(uow.session, login)
    try:
        policy.check(who, permission, organization)
        transaction_memo(uow.session)[key] = True  # after the read: the transaction has begun
    except Forbidden as e:
        # in the caller's transaction if it commits (a status handler goes on), else in one of its own
        audit(
            uow.session,
            login,
            "permission.denied",
            permission,
            organization=organization,
            outcome="denied",
            message=e.message,
        )
        engine, message = uow.session.get_bind(), e.message
        uow.on_rollback(lambda: _record_denial(engine, login, permission, organization, message))
        raise


def _record_denial(engine: Any, login: str, permission: str, organization: str | None, message: str) -> None:
    try:
        with Session(engine) as s:
            audit(
                s, login, "permission.denied", permission, organization=organization, outcome="denied", message=message
            )
            s.commit()
    except Exception as e:  # the refusal matters more than its audit row: never hide it
        log.warning("could not audit the denial of %s to %s: %s", permission, login, e)
