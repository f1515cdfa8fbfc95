"""POST /api/v1/exports and /imports (background tasks), GET /api/v1/tasks/{id}."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response

from iss_plugin.adapters.db import catalog as find
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import NotFound, UsageError
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.services import bulk_transfer, exporting, importing, tasks
from iss_plugin.web.auth import authorize, caller, iss_app

from .models import ERRORS, ExportBody, ImportBody, TaskAccepted, TaskOut
from .runner import TaskRunner

router = APIRouter(prefix="/api/v1", tags=["transfers"], responses=ERRORS)
UPLOADS = "uploads"


def runner(request: Request) -> TaskRunner:
    found: TaskRunner = request.app.state.task_runner
    return found


def export_requests(body: ExportBody) -> list[exporting.ExportRequest]:
    if body.from_version and body.since:
        raise UsageError("give from_version or since, not both")
    if body.version and (len(body.content_views) != 1 or body.repositories):
        raise UsageError("version applies to exactly one content view; leave it out to export the latest versions")
    since = body.since.replace(tzinfo=body.since.tzinfo or UTC) if body.since else None
    template = exporting.ExportRequest(
        organization=body.organization,
        scope="content_view_version",
        incremental=body.incremental,
        version=VersionNumber.parse(body.version) if body.version else None,
        from_version=body.from_version if body.incremental else None,
        since=since if body.incremental else None,
        destination=body.destination,
        fmt=body.format,
        chunk_size=max(1, int(body.chunk_size_mb * 1024 * 1024)) if body.chunk_size_mb else None,
    )
    made = [replace(template, content_view=cv) for cv in body.content_views]
    for path in body.repositories:
        product, _, repository = path.partition("/")
        if not product or not repository or "/" in repository:
            raise UsageError(f"repository '{path}' is not PRODUCT/REPOSITORY")
        made.append(replace(template, scope="repository", version=None, product=product, repository=repository))
    return made


def _accepted(response: Response, task: tasks.TaskView) -> TaskAccepted:
    location = f"/api/v1/tasks/{task['id']}"
    response.headers["Location"] = location
    return TaskAccepted(task_id=task["id"], state=task["state"], location=location)


@router.post("/exports", status_code=202, response_model=TaskAccepted)
def create_export(
    body: ExportBody,
    request: Request,
    response: Response,
    who: policy.Identity = Depends(caller),
    app: App = Depends(iss_app),
    pool: TaskRunner = Depends(runner),
) -> TaskAccepted:
    """Bulk export: one bundle per content view or repository, written in the background."""
    authorize(app, request, who, policy.EXPORT_CONTENT, body.organization)
    requests = export_requests(body)
    bulk_transfer.check_export_targets(app.uow(), requests)
    task = tasks.create(app.uow(), "export", body.organization, who.login, body.model_dump(mode="json"))
    env = bulk_transfer.ExportEnv(
        out_dir=app.settings.exports_path,
        signer=app.signer,
        server_id=app.server_id,
        staging_root=app.settings.data_dir / "staging",
    )
    pool.submit(task["id"], lambda: bulk_transfer.run_export_task(app.uow, task["id"], requests, env, who.login))
    return _accepted(response, task)


def import_source(app: App, body: ImportBody) -> Path:
    """The bundle to import: under the import directory only, never an arbitrary path."""
    if bool(body.path) == bool(body.upload):
        raise UsageError("give exactly one of path (under the import directory) or upload (an uploaded bundle's name)")
    root = app.settings.imports_path.resolve()
    wanted = root / UPLOADS / (body.upload or "") if body.upload else root / (body.path or "")
    if body.upload and ("/" in body.upload or body.upload.startswith(".")):
        raise UsageError(f"upload '{body.upload}' is not an upload name")
    resolved = wanted.resolve()
    if not resolved.is_relative_to(root) or resolved == root:
        raise UsageError(f"'{body.path}' is not under the import directory; give a path relative to it")
    if not resolved.exists():
        raise NotFound(f"{'upload' if body.upload else 'path'} '{body.upload or body.path}' does not exist here")
    return resolved


@router.post("/imports", status_code=202, response_model=TaskAccepted)
def create_import(
    body: ImportBody,
    request: Request,
    response: Response,
    who: policy.Identity = Depends(caller),
    app: App = Depends(iss_app),
    pool: TaskRunner = Depends(runner),
) -> TaskAccepted:
    """Import a bundle from the import directory or an upload, in the background."""
    authorize(app, request, who, policy.IMPORT_CONTENT, body.organization)
    path = import_source(app, body)
    with app.uow() as uow:
        find.organization(uow.session, body.organization)  # 404 now, not a failed task later
    job = importing.ImportRequest(organization=body.organization, path=path, scope=body.scope, dry_run=body.dry_run)
    task = tasks.create(app.uow(), "import", body.organization, who.login, body.model_dump(mode="json"))
    work_dir = app.settings.imports_path
    pool.submit(task["id"], lambda: bulk_transfer.run_import_task(app.uow, task["id"], job, work_dir, who.login))
    return _accepted(response, task)


@router.get("/tasks/{task_id}", response_model=TaskOut)
def get_task(
    task_id: str, request: Request, who: policy.Identity = Depends(caller), app: App = Depends(iss_app)
) -> TaskOut:
    """A task's state, result and error. Its submitter, or who may export/import in its organization."""
    task = tasks.get(app.uow(), task_id)
    if task["actor"] != who.login:
        permission = policy.EXPORT_CONTENT if task["kind"] == "export" else policy.IMPORT_CONTENT
        authorize(app, request, who, permission, task["organization"])
    return TaskOut.model_validate(task)
