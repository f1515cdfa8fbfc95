"""A thin session over pulp-glue for the Pulp backend: one login, error translation, fast task waits.

- Authentication: one HTTP basic login (POST /login/), then the session cookie. Pulp checks a basic
  password with Django's PBKDF2 on every request (about 250 ms each here); the cookie costs nothing.
  The password is read once and never logged or kept in an error message.
- Errors: every pulp-glue or HTTP error becomes an iss `BackendError`, transient for connection
  errors, timeouts and 5xx answers, permanent otherwise. A failed task carries Pulp's own error text.
- Tasks: pulp-glue polls a task once a second; `wait_task` polls from 50 ms with a short backoff, so a
  0.2 s task costs about 0.25 s of wall time instead of 1 s.
- Memory: a pulp-glue context per thread (requests sessions are not shared across threads), but the
  API description parsed once per process (_SharedSpecAPI), and only the operations of the families
  iss calls (USED_OPERATIONS): the whole of Pulp's (2.5 MB of JSON with pulp_rpm) held about 17 MiB
  per parse, and a streamed import runs two threads.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from pulp_glue.common import context as glue_context
from pulp_glue.common.context import PulpContext, PulpEntityContext
from pulp_glue.common.exceptions import PulpException, PulpHTTPError
from pulp_glue.common.openapi import OpenAPI

from iss_plugin.domain.errors import BackendError

log = logging.getLogger(__name__)

PAGE = 1000  # pulp-glue's and Pulp's largest page
POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.05, 1.5, 0.25  # a 1 s cap cost ~0.4-0.8 s per 2 s publication

Entity = dict[str, Any]  # a Pulp resource or task as its API returns it (JSON)
Params = dict[str, Any]  # an operation's parameters or body

# What in a task's error text says that retrying may help: the network, the remote or Pulp itself.
_TRANSIENT_TEXT = re.compile(
    r"cannot connect|connection (refused|reset|aborted)|timed? ?out|timeout|temporar|"
    r"server ?disconnected|service unavailable|bad gateway|gateway time|too many requests|"
    r"\b(429|500|502|503|504)\b|name or service not known|network is unreachable",
    re.IGNORECASE,
)


# The operation families iss calls (operation ids start with one of these); the rest of Pulp's API
# description (users, roles, other content guards, ACS, domains, other plugins...) is dropped when parsed.
USED_OPERATIONS = (
    "artifacts_",
    "content_rpm_",
    "contentguards_core_header_",
    "distributions_rpm_",
    "exporters_core_",
    "importers_core_",
    "login",
    "orphans_",
    "publications_rpm_",
    "remotes_rpm_",
    "repositories_",
    "repository_versions_",
    "rpm_",
    "status_",
    "task_groups_",
    "tasks_",
    "uploads_",
)
_SCHEMA_REF = "#/components/schemas/"


def used_part(spec: dict[str, Any]) -> dict[str, Any]:
    """The API description with only the paths of USED_OPERATIONS and the schemas they refer to."""
    paths = {}
    for path, item in spec.get("paths", {}).items():
        kept = {
            k: op
            for k, op in item.items()
            if not (isinstance(op, dict) and "operationId" in op) or op["operationId"].startswith(USED_OPERATIONS)
        }
        if any(isinstance(op, dict) and "operationId" in op for op in kept.values()):
            paths[path] = kept
    schemas = spec.get("components", {}).get("schemas", {})
    referred: set[str] = set()
    todo: list[Any] = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
                name = ref.removeprefix(_SCHEMA_REF)
                if name not in referred and name in schemas:
                    referred.add(name)
                    todo.append(schemas[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    components = dict(spec.get("components", {}), schemas={k: v for k, v in schemas.items() if k in referred})
    return dict(spec, paths=paths, components=components)


def _patched_used_part(spec: Any) -> Any:
    return used_part(glue_context._patch_api_hook(spec))


class _SharedSpecAPI(OpenAPI):
    """pulp-glue's OpenAPI whose parse of the API description (the used part) is shared by every
    instance made from the same text (per thread, per login): the parse is read-only once made."""

    _parses: dict[bytes, tuple[Any, ...]] = {}
    _lock = threading.Lock()
    KEEP = 4  # different descriptions kept (a Pulp per URL; a new one after an upgrade)

    def _parse_api(self, data: bytes) -> None:
        key = hashlib.sha256(data).digest()
        with self._lock:
            parsed = self._parses.get(key)
            if parsed is None:
                super()._parse_api(data)
                parsed = (self._api_spec, self.api_spec, self.openapi_version, self.operations)
                while len(self._parses) >= self.KEEP:
                    del self._parses[next(iter(self._parses))]
                self._parses[key] = parsed
        self._api_spec, self.api_spec, self.openapi_version, self.operations = parsed


class _Context(PulpContext):
    """pulp-glue's context with the echo and prompt it leaves abstract (quiet, never asks), and its
    API description shared between contexts (_SharedSpecAPI)."""

    @property
    def api(self) -> OpenAPI:
        if self._api is None:
            # as PulpContext.api (pulp-glue 0.41), with the shared parse; iss passes no username
            # or password here (it logs in itself) and declares no plugin requirements
            self._api = _SharedSpecAPI(
                doc_path=f"{self._api_root}api/{self._api_version}/docs/api.json",
                verify_ssl=self.verify_ssl,
                patch_api_hook=_patched_used_part,
                **self._api_kwargs,
            )
        return self._api

    def echo(self, message: str, nl: bool = True, err: bool = False) -> None:
        return None

    def prompt(self, text: str, hide_input: bool = False) -> str:
        raise BackendError("Pulp asked for a password interactively; configure pulp.password_file")


@dataclass(frozen=True)
class PulpConnection:
    url: str
    username: str
    password: str
    timeout_seconds: int = 600

    def __repr__(self) -> str:  # the password never appears in a log or a traceback
        return f"PulpConnection(url={self.url!r}, username={self.username!r}, password=***)"


class FilesystemExporterContext(PulpEntityContext):
    """pulp-glue has no context for Pulp's filesystem exporter; this is one, in its style."""

    ENTITY = "filesystem exporter"
    ENTITIES = "filesystem exporters"
    HREF = "filesystem_exporter_href"
    ID_PREFIX = "exporters_core_filesystem"


def is_transient_text(text: str) -> bool:
    return bool(_TRANSIENT_TEXT.search(text or ""))


def translate(e: BaseException, doing: str) -> BackendError:
    """A pulp-glue / requests error as an iss BackendError that knows whether it is transient."""
    if isinstance(e, BackendError):
        return e
    if isinstance(e, PulpHTTPError):
        status = e.status_code
        body = str(e)[:2000]
        return BackendError(
            f"Pulp answered {status} while {doing}: {body}",
            transient=status >= 500 or status == 429,
            details={"status": status},
        )
    cause = e.__cause__ or e.__context__
    if isinstance(e, (requests.ConnectionError, requests.Timeout)) or isinstance(
        cause, (requests.ConnectionError, requests.Timeout)
    ):
        return BackendError(f"cannot reach Pulp while {doing}: {e}", transient=True)
    if isinstance(e, PulpException):
        text = str(e)
        return BackendError(f"Pulp failed while {doing}: {text}", transient=is_transient_text(text))
    return BackendError(f"unexpected error from pulp-glue while {doing}: {type(e).__name__}: {e}")


def _run_seconds(task: Entity) -> float | None:
    """How long Pulp says the task took from creation to finish (queueing included)."""
    from datetime import datetime

    try:
        created = datetime.fromisoformat(task["pulp_created"].replace("Z", "+00:00"))
        finished = datetime.fromisoformat(task["finished_at"].replace("Z", "+00:00"))
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    return (finished - created).total_seconds()


class PulpSession:
    """One logged-in pulp-glue context per thread (requests sessions are not shared across threads)."""

    def __init__(self, conn: PulpConnection):
        self.conn = conn
        self._local = threading.local()
        self._cookie_lock = threading.Lock()
        self._cookie: str | None = None
        self._csrf: str | None = None
        self._generation = 0
        self._operation_urls: dict[str, tuple[str, str]] = {}
        self.task_seconds = 0.0  # wall time spent waiting for tasks (for the benchmark's question)
        self.tasks = 0
        self.task_log: list[tuple[str, float, float | None]] = []  # (doing, waited s, Pulp's run s), last 1000

    # --- authentication ----------------------------------------------------------------------
    def _login(self) -> None:
        with self._cookie_lock:
            try:
                r = requests.post(
                    self.conn.url.rstrip("/") + "/pulp/api/v3/login/",
                    auth=(self.conn.username, self.conn.password),
                    timeout=30,
                )
            except requests.RequestException as e:
                raise BackendError(f"cannot reach Pulp at {self.conn.url}: {e}", transient=True) from None
            if r.status_code in (401, 403):
                raise BackendError(f"Pulp at {self.conn.url} refused the credentials of user '{self.conn.username}'")
            if r.status_code >= 400:
                raise BackendError(
                    f"Pulp login at {self.conn.url} answered {r.status_code}: {r.text[:500]}",
                    transient=r.status_code >= 500,
                )
            self._cookie = f"sessionid={r.cookies.get('sessionid')}; csrftoken={r.cookies.get('csrftoken')}"
            self._csrf = r.cookies.get("csrftoken")
            self._generation += 1

    @property
    def ctx(self) -> PulpContext:
        if self._cookie is None:
            self._login()
        local = self._local
        if getattr(local, "ctx", None) is None or local.generation != self._generation:
            new = _Context(
                api_root="/pulp/",
                api_kwargs={
                    "base_url": self.conn.url,
                    "headers": {"Cookie": self._cookie, "X-CSRFToken": self._csrf, "Referer": self.conn.url},
                },
                timeout=timedelta(seconds=self.conn.timeout_seconds),
                verify_ssl=True,
            )
            _ = new.api  # load the (disk-cached) API description now, not in the middle of an operation
            local.ctx, local.generation = new, self._generation
        ctx: PulpContext = local.ctx
        return ctx

    # --- calls ------------------------------------------------------------------------------------
    def call(self, operation: str, doing: str, *, parameters: Params | None = None, body: Params | None = None) -> Any:
        """One API call. Tasks are returned unfinished (wait with wait_task)."""
        self._known(operation)
        for attempt in (1, 2):
            try:
                return self.ctx.call(operation, non_blocking=True, parameters=parameters, body=body)
            except PulpHTTPError as e:
                if e.status_code in (401, 403) and attempt == 1:  # the session expired: log in again
                    self._cookie = None
                    continue
                raise translate(e, doing) from None
            except BackendError:
                raise
            except Exception as e:
                raise translate(e, doing) from None
        raise AssertionError("unreachable")

    def _known(self, operation: str) -> None:
        if operation not in self.ctx.api.operations:
            raise BackendError(
                f"Pulp operation '{operation}' is not in the part of Pulp's API description iss keeps "
                "(a defect of iss: its family belongs in pulp/client.py USED_OPERATIONS), or Pulp at "
                f"{self.conn.url} lacks it (pulp_rpm not installed?)"
            )

    def operation_url(self, operation: str) -> tuple[str, str]:
        """(method, absolute URL) of an operation without path parameters, from the API description
        (looked up once: a pulp-glue context per upload thread would parse the description again)."""
        with self._cookie_lock:
            found = self._operation_urls.get(operation)
        if found is None:
            self._known(operation)
            method, url_path = self.ctx.api.operations[operation]
            found = (method.upper(), self.conn.url.rstrip("/") + url_path)
            with self._cookie_lock:
                self._operation_urls[operation] = found
        return found

    def upload_file(self, operation: str, path: Path, field: str = "file") -> Entity:
        """POST one file to a synchronous upload operation (e.g. content_rpm_packages_upload).

        The hot path of a bulk upload, from several threads at once: a plain requests session per
        thread with the login cookie (a pulp-glue context per thread would parse the API description
        again in each); the operation's URL comes from pulp-glue's API description."""
        method, url = self.operation_url(operation)
        doing = f"uploading {path.name}"
        for attempt in (1, 2):
            http = getattr(self._local, "http", None)
            if http is None or self._local.http_generation != self._generation:
                http = requests.Session()
                # requests drops a header whose session value is None: leave such a header out
                headers = {"Cookie": self._cookie, "X-CSRFToken": self._csrf, "Referer": self.conn.url}
                http.headers.update({k: v for k, v in headers.items() if v is not None})
                self._local.http, self._local.http_generation = http, self._generation
            try:
                with open(path, "rb") as f:
                    r = http.request(method, url, files={field: (path.name, f)}, timeout=self.conn.timeout_seconds)
            except requests.RequestException as e:
                raise BackendError(f"cannot reach Pulp while {doing}: {e}", transient=True) from None
            if r.status_code in (401, 403) and attempt == 1:
                self._login()  # the session expired: log in again
                continue
            if r.status_code >= 400:
                raise BackendError(
                    f"Pulp answered {r.status_code} while {doing}: {r.text[:2000]}",
                    transient=r.status_code >= 500 or r.status_code == 429,
                    details={"status": r.status_code},
                )
            entity: Entity = r.json()
            return entity
        raise AssertionError("unreachable")

    def list(self, operation: str, doing: str, parameters: Params) -> Iterator[Entity]:
        """Every entity of a list operation, a page (1000) per request."""
        params = dict(parameters, limit=PAGE, offset=0)
        while True:
            page = self.call(operation, doing, parameters=params)
            yield from page["results"]
            if not page.get("next"):
                return
            params["offset"] += len(page["results"])

    def first(self, operation: str, doing: str, parameters: Params) -> Entity | None:
        page = self.call(operation, doing, parameters=dict(parameters, limit=1))
        results: list[Entity] = page["results"]
        return results[0] if results else None

    def run(
        self, operation: str, doing: str, *, parameters: Params | None = None, body: Params | None = None
    ) -> Entity:
        """Call an operation that starts a task and wait for it; returns the finished task."""
        task = self.call(operation, doing, parameters=parameters, body=body)
        if isinstance(task, dict) and "state" in task and "pulp_href" in task:
            return self.wait_task(task, doing)
        entity: Entity = task
        return entity

    def wait_task(self, task: Entity, doing: str) -> Entity:
        start = time.monotonic()
        deadline = start + self.conn.timeout_seconds
        delay = POLL_FIRST
        href = task["pulp_href"]
        try:
            while task["state"] in ("waiting", "running", "canceling"):
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"Pulp task {href} ({doing}) did not finish in {self.conn.timeout_seconds} s",
                        transient=True,
                        details={"task": href},
                    )
                time.sleep(delay)
                delay = min(delay * POLL_FACTOR, POLL_MAX)
                task = self.call("tasks_read", f"waiting for {doing}", parameters={"task_href": href})
        finally:
            self.task_seconds += time.monotonic() - start
            self.tasks += 1
        ran = _run_seconds(task)
        self.task_log.append((doing, time.monotonic() - start, ran))
        del self.task_log[:-1000]
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "task %s (%s): %s, waited %.3f s, ran %s -> %s",
                href,
                doing,
                task["state"],
                time.monotonic() - start,
                task.get("started_at"),
                task.get("finished_at"),
            )
        if task["state"] == "completed":
            return task
        error = task.get("error") or {}
        text = error.get("description") or error.get("reason") or task["state"]
        raise BackendError(
            f"Pulp task failed while {doing}: {text}",
            transient=is_transient_text(text),
            details={"task": href, "state": task["state"]},
        )
