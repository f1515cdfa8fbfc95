"""Request and response bodies of the JSON API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """Every error: iss's (error, reason, message, problems, details, transient), or FastAPI's
    request validation error (`detail`: where each field is wrong)."""

    error: str | None = None
    reason: str | None = None
    message: str | None = None
    problems: list[str] | None = None
    details: dict[str, Any] | None = None
    transient: bool | None = None
    detail: list[dict[str, Any]] | str | None = None


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str = Field(min_length=1, max_length=128)
    content_views: list[str] = Field(default=[], description="content view labels", max_length=100)
    repositories: list[str] = Field(default=[], description="PRODUCT/REPOSITORY labels", max_length=100)
    version: str | None = Field(default=None, description="X.Y of a single content view (default: latest)")
    incremental: bool = False
    from_version: str | None = Field(default=None, description="base: X.Y for content views, N for a repository")
    since: datetime | None = Field(default=None, description="base: the newest version created before this time")
    format: Literal["dir", "tgz", "iso"] = "tgz"
    chunk_size_mb: float | None = Field(default=None, gt=0, le=1 << 30)
    destination: str | None = Field(default=None, description="record against this destination (its default base)")


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str = Field(min_length=1, max_length=128)
    scope: Literal["content_view_version", "repository"] = "content_view_version"
    path: str | None = Field(default=None, description="a bundle under the server's import directory (relative)")
    upload: str | None = Field(default=None, description="the name of a bundle sent to PUT /api/v1/uploads/{name}")
    dry_run: bool = False


class TaskAccepted(BaseModel):
    task_id: str
    state: str
    location: str


class TaskOut(BaseModel):
    id: str
    kind: str
    organization: str
    actor: str
    state: Literal["queued", "running", "done", "failed"]
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    reason: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None


class BundleOut(BaseModel):
    bundle_id: str
    organization: str
    scope: str
    content_view: str | None
    version: str | None
    product: str | None
    repository: str | None
    kind: str
    base: str | None
    destination: str | None
    format: str
    size: int | None
    created: datetime
    download: str


class UploadOut(BaseModel):
    name: str
    size: int
    sha256: str


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    server_id: str = Field(min_length=1, max_length=128)
    public_key: str = Field(min_length=1, max_length=10000, description="the destination's ed25519.pub (PEM)")
    url: str | None = Field(
        default=None,
        max_length=1024,
        description="an online destination: its `iss serve` address; bundles are pushed there (no bundle file)",
    )


class DestinationOut(BaseModel):
    name: str
    server_id: str
    fingerprint: str
    online: bool = False
    url: str | None = None


class DestinationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    online: bool = Field(description="true: pushed to at `url`; false: bundle files again (the url is forgotten)")
    url: str | None = Field(default=None, max_length=1024, description="with online: true, the destination's address")


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str = Field(min_length=1, max_length=128)
    organization: str = Field(min_length=1, max_length=128)
    content_view: str | None = None
    repository: str | None = Field(default=None, description="PRODUCT/REPOSITORY")


class SubscribedOut(BaseModel):
    destination: str
    organization: str
    content_view: str | None
    repository: str | None
    created: bool


class SubscriptionOut(BaseModel):
    destination: str
    server_id: str
    organization: str
    content_view: str | None
    repository: str | None
    acknowledged: str | None
    in_flight: str | None
    rejections: int
    last_rejection: str | None
    online: bool
    url: str | None


class HookAccepted(BaseModel):
    event_id: str
    duplicate: bool
    organization: str
    content_view: str
    version: str


class UserOut(BaseModel):
    login: str
    admin: bool
    service_account: bool
    disabled: bool
    roles: list[str] = Field(description="ROLE@ORGANIZATION ('*': every organization)")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = Field(
        default=None,
        description="true: the user's password, tokens and sessions are refused from the next request "
        "(its sessions for good: enabling restores its tokens, not its sessions)",
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="a new password; every dashboard session of the user ends (except the caller's own "
        "session when it changes its own password); its API tokens keep working",
    )


class UserDeleted(BaseModel):
    login: str
    deleted: bool
    roles_removed: list[str]
    tokens_deleted: list[str]


class RoleOut(BaseModel):
    name: str
    builtin: bool
    permissions: list[str]


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add_permissions: list[str] = Field(default=[], max_length=64)
    remove_permissions: list[str] = Field(default=[], max_length=64)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in (
        (400, "bad request"),
        (401, "no or bad credentials"),
        (403, "not permitted"),
        (404, "no such thing"),
        (422, "refused input"),
    )
}
