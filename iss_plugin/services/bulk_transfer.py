"""Bulk export and import as background tasks (POST /api/v1/exports and /imports).

A bulk export is one ExportRequest per content view or repository, run one after the other; each
writes its own bundle and export record as `iss content-export` does. The task ends `done` when
every bundle was written, else `failed` with the bundles that were written and what failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden, IssError, UsageError
from iss_plugin.domain.jsontypes import JSONObject

from . import exporting, importing, tasks
from .identity import authorize_account

if TYPE_CHECKING:
    from iss_plugin.adapters.bundles.signing import Signer

UowFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class ExportEnv:
    """What an export needs of this server."""

    out_dir: Path
    signer: Signer
    server_id: str
    staging_root: Path | None = None


class WrittenBundle(TypedDict):
    bundle_id: str
    what: str
    kind: str
    format: str
    path: str
    files: list[str]
    size: int


class FailedItem(TypedDict):
    what: str
    reason: str
    error: str


def describe(request: exporting.ExportRequest) -> str:
    if request.scope == "content_view_version":
        return f"content view {request.content_view}" + (f" {request.version}" if request.version else "")
    return f"repository {request.product}/{request.repository}"


def check_export_targets(uow: UnitOfWork, requests: Sequence[exporting.ExportRequest]) -> None:
    """NotFound (before any task is queued) for an organization, content view or repository that
    does not exist."""
    if not requests:
        raise UsageError("name at least one content view or repository to export")
    with uow:
        for r in requests:
            org = find.organization(uow.session, r.organization)
            if r.scope == "content_view_version":
                find.content_view(uow.session, org, r.content_view or "")
            else:
                find.repository(uow.session, org, r.product or "", r.repository or "")


def still_permitted(new_uow: UowFactory, task_id: str, actor: str, permission: str, organization: str) -> bool:
    """A task runs only if its submitter still holds the permission when it starts: one accepted
    before its user was disabled or deleted, or lost the permission, fails (reason `forbidden`,
    the denial audited) instead of running on the grants it had when it was queued."""
    uow = new_uow()
    try:
        with uow:
            authorize_account(uow, actor, permission, organization)
    except Forbidden as e:
        tasks.finish(new_uow(), task_id, None, f"refused when it started: {e.message}", e.reason)
        return False
    return True


def run_export_task(
    new_uow: UowFactory, task_id: str, requests: Sequence[exporting.ExportRequest], env: ExportEnv, actor: str
) -> None:
    if requests and not still_permitted(new_uow, task_id, actor, policy.EXPORT_CONTENT, requests[0].organization):
        return
    tasks.mark_running(new_uow(), task_id)
    written: list[WrittenBundle] = []
    failed: list[FailedItem] = []
    for request in requests:
        try:
            result = exporting.export_bundle(
                new_uow(),
                request,
                out_dir=env.out_dir,
                signer=env.signer,
                server_id=env.server_id,
                actor=actor,
                staging_root=env.staging_root,
            )
        except IssError as e:
            if not isinstance(e, UsageError) and e.reason != "not_found":
                exporting.record_failed_export(new_uow(), request, e, actor)
            failed.append({"what": describe(request), "reason": e.reason, "error": e.message})
            continue
        except Exception as e:  # recorded on the task: the pool thread must not die silently
            failed.append({"what": describe(request), "reason": "error", "error": f"{type(e).__name__}: {e}"})
            continue
        written.append(
            {
                "bundle_id": result["bundle_id"],
                "what": describe(request),
                "kind": result["kind"],
                "format": result["format"],
                "path": result["path"],
                "files": result["files"],
                "size": result["size"],
            }
        )
    outcome: JSONObject = {"bundles": list(written), "failed": list(failed)}
    error = "; ".join(f"{f['what']}: {f['error']}" for f in failed) or None
    tasks.finish(new_uow(), task_id, outcome, error, failed[0]["reason"] if failed else None)


def run_import_task(
    new_uow: UowFactory, task_id: str, request: importing.ImportRequest, work_dir: Path, actor: str
) -> None:
    if not still_permitted(new_uow, task_id, actor, policy.IMPORT_CONTENT, request.organization):
        return
    tasks.mark_running(new_uow(), task_id)
    try:
        summary = importing.import_bundle(new_uow(), request, work_dir=work_dir, actor=actor)
    except IssError as e:
        if not request.dry_run and e.reason not in ("not_found", "usage"):
            importing.record_rejection(new_uow(), request, e, actor)
        problems: JSONObject = {"problems": list(e.problems[:200])}
        tasks.finish(new_uow(), task_id, problems, e.message, ev.import_failure_reason(e))
        return
    except Exception as e:
        tasks.finish(new_uow(), task_id, None, f"{type(e).__name__}: {e}", "error")
        return
    tasks.finish(new_uow(), task_id, dict(summary), None, None)
