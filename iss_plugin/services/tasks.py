"""Background tasks of the web API: a row per request, its state, result and error.

The runner (iss_plugin/web/api/runner.py) calls these around the work it does; a task that was
queued or running when the server stopped is marked failed when the server starts again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import select

from iss_plugin.adapters.db.task_models import Task
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import NotFound
from iss_plugin.domain.jsontypes import JSONObject

INTERRUPTED = "interrupted: the server stopped while the task was queued or running; submit it again"


class TaskView(TypedDict):
    id: str
    kind: str
    organization: str
    actor: str
    state: str
    request: JSONObject
    result: JSONObject | None
    error: str | None
    reason: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _view(t: Task) -> TaskView:
    return {
        "id": t.id,
        "kind": t.kind,
        "organization": t.organization,
        "actor": t.actor,
        "state": t.state,
        "request": t.request,
        "result": t.result,
        "error": t.error,
        "reason": t.reason,
        "created": t.created,
        "started": t.started,
        "finished": t.finished,
    }


def create(uow: UnitOfWork, kind: str, organization: str, actor: str, request: JSONObject) -> TaskView:
    with uow:
        task = Task(
            id=str(uuid.uuid4()),
            kind=kind,
            organization=organization,
            actor=actor,
            state="queued",
            request=request,
            created=_now(),
        )
        uow.session.add(task)
        uow.commit()
        return _view(task)


def get(uow: UnitOfWork, task_id: str) -> TaskView:
    with uow:
        task = uow.session.get(Task, task_id)
        if task is None:
            raise NotFound(f"task '{task_id}' does not exist (the id POST /api/v1/exports or /imports returned)")
        return _view(task)


def mark_running(uow: UnitOfWork, task_id: str) -> None:
    with uow:
        task = uow.session.get(Task, task_id)
        if task is not None:
            task.state, task.started = "running", _now()
            uow.commit()


def finish(uow: UnitOfWork, task_id: str, result: JSONObject | None, error: str | None, reason: str | None) -> None:
    """done with its result, or failed with its error (a failed bulk task may carry partial results)."""
    with uow:
        task = uow.session.get(Task, task_id)
        if task is not None:
            task.state = "failed" if error else "done"
            task.result, task.error, task.reason, task.finished = result, error, reason, _now()
            uow.commit()


def fail_interrupted(uow: UnitOfWork) -> int:
    """At start-up: every task left queued or running by a stopped server is failed, saying so."""
    with uow:
        rows = list(uow.session.scalars(select(Task).where(Task.state.in_(("queued", "running")))))
        for task in rows:
            task.state, task.error, task.reason, task.finished = "failed", INTERRUPTED, "interrupted", _now()
        uow.commit()
        return len(rows)
