"""Users and roles (administrators only): GET /api/v1/users, PATCH /api/v1/users/{login}
(disable, enable, a new password), DELETE /api/v1/users/{login}, GET /api/v1/roles, PATCH /api/v1/roles/{name}
(add and remove permissions). The same services, refusals and audit as `iss user` / `iss role`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.services import identity
from iss_plugin.web.auth import iss_app, keep_session, require

from .models import ERRORS, RoleOut, RoleUpdate, UserDeleted, UserOut, UserUpdate

router = APIRouter(prefix="/api/v1", tags=["users"], responses=ERRORS)
admin = require(policy.ADMIN)


@router.get("/users", response_model=list[UserOut])
def list_users(who: policy.Identity = Depends(admin), app: App = Depends(iss_app)) -> list[UserOut]:
    return [UserOut(**u) for u in identity.list_users(app.uow())]


@router.patch("/users/{login}", response_model=UserOut)
def update_user(
    body: UserUpdate,
    request: Request,
    login: str = Path(max_length=128),
    who: policy.Identity = Depends(admin),
    app: App = Depends(iss_app),
) -> UserOut:
    """`{"disabled": true}`: the user's tokens and dashboard sessions stop working at once (its
    sessions for good); `{"disabled": false}` enables it again (its tokens work again). Not
    yourself, not the last enabled administrator. `{"password": "..."}`: a new password; the
    user's dashboard sessions end, except this one when you change your own password in it."""
    identity.update_user(app.uow(), login, who.login, disabled=body.disabled, password=body.password)
    if body.password is not None:
        keep_session(request, app, login)
    [u] = [u for u in identity.list_users(app.uow()) if u["login"] == login]
    return UserOut(**u)


@router.delete("/users/{login}", response_model=UserDeleted)
def delete_user(
    login: str = Path(max_length=128), who: policy.Identity = Depends(admin), app: App = Depends(iss_app)
) -> UserDeleted:
    """Delete a user with its grants and tokens (its audit entries stay). Not yourself, not the
    last enabled administrator, not a service account a worker acts as."""
    workers = identity.worker_accounts(app.settings.export_account, app.settings.import_account)
    return UserDeleted(**identity.delete_user(app.uow(), login, who.login, workers))


@router.get("/roles", response_model=list[RoleOut])
def list_roles(who: policy.Identity = Depends(admin), app: App = Depends(iss_app)) -> list[RoleOut]:
    return [RoleOut(**r) for r in identity.list_roles(app.uow())]


@router.patch("/roles/{name}", response_model=RoleOut)
def update_role(
    body: RoleUpdate,
    name: str = Path(max_length=128),
    who: policy.Identity = Depends(admin),
    app: App = Depends(iss_app),
) -> RoleOut:
    """Add and remove permissions of a role that is not built in; every holder has the new set
    from its next request."""
    changed = identity.update_role(
        app.uow(), name, tuple(body.add_permissions), tuple(body.remove_permissions), who.login
    )
    return RoleOut(name=changed["name"], builtin=changed["builtin"], permissions=changed["permissions"])
