"""The background worker pool of `iss serve`: bounded threads that run bulk exports and imports.

Made by install_api (never at import time); a task's state lives in the database (services/tasks),
so GET /api/v1/tasks/{id} reads it from any thread. Tasks left queued or running by a previous
process are failed when the pool starts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from iss_plugin.bootstrap import App
from iss_plugin.services import tasks

log = logging.getLogger(__name__)
WORKERS = 2


class TaskRunner:
    def __init__(self, app: App, workers: int = WORKERS) -> None:
        self.app = app
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iss-task")
        self._futures: set[Future[None]] = set()

    def start(self) -> int:
        """Fail what a stopped server left behind; returns how many."""
        failed = tasks.fail_interrupted(self.app.uow())
        if failed:
            log.warning("marked %d interrupted task(s) failed", failed)
        return failed

    def submit(self, task_id: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except BaseException as e:  # the services record their own failures; this is the last resort
                log.exception("task %s failed", task_id)
                tasks.finish(self.app.uow(), task_id, None, f"{type(e).__name__}: {e}", "error")

        future = self._pool.submit(run)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def wait(self, timeout: float | None = None) -> None:
        """Tests: wait for every submitted task."""
        from concurrent.futures import wait

        wait(list(self._futures), timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
