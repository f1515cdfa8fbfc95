"""Fixtures for the backend contract suite: the same tests run against every content backend.

Adding a backend is one line in BACKENDS plus a factory in FACTORIES: a context manager that yields
a `Server` (a backend with its own, independent store) and cleans up after itself."""

from __future__ import annotations

import contextlib
import http.server
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from iss_plugin.adapters.backends.base import ContentBackend
from iss_plugin.adapters.fixtures import build_rpms

BACKENDS = ["local", "pulp"]


@dataclass
class Server:
    """One content server for a test: its backend and how to end a unit of work."""

    name: str
    backend: ContentBackend
    commit: Callable[[], None]
    rollback: Callable[[], None]  # after a failed operation: undo whatever it left (local: session + blobs)
    workdir: Path
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def local_server(tmp_path: Path, name: str) -> Iterator[Server]:
    from iss_plugin.adapters.backends.local import LocalBackend
    from iss_plugin.adapters.db.engine import make_engine, make_session_factory
    from iss_plugin.adapters.db.migrate import upgrade

    root = tmp_path / name
    root.mkdir(parents=True)
    url = f"sqlite:///{root / 'iss.db'}"
    upgrade(url)
    engine = make_engine(url)
    session = make_session_factory(engine)()
    backend = LocalBackend(session, root / "store", root / "published")

    def rollback() -> None:
        session.rollback()
        backend.discard_new_blobs()

    try:
        yield Server(name, backend, session.commit, rollback, root, {"session": session, "engine": engine})
    finally:
        session.close()
        engine.dispose()


@contextlib.contextmanager
def pulp_server(tmp_path: Path, name: str) -> Iterator[Server]:
    """A server on one of the two Pulps of deploy/pulp/pulpctl: "source" on instance 1, any other
    name on instance 2; a repository prefix of its own, purged at the end. Pulp commits as it goes:
    commit and rollback have nothing to do."""
    from tests.integration.pulp.support import pulp_backend

    root = tmp_path / name
    root.mkdir(parents=True)
    with pulp_backend(1 if name == "source" else 2) as backend:
        yield Server(name, backend, lambda: None, lambda: None, root)


FACTORIES: dict[str, Callable[[Path, str], contextlib.AbstractContextManager[Server]]] = {
    "local": local_server,
    "pulp": pulp_server,
}


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def make_server(backend_name, tmp_path) -> Iterator[Callable[[str], Server]]:
    """make_server(name) -> a new, independent server of the backend under test."""
    with contextlib.ExitStack() as stack:
        yield lambda name: stack.enter_context(FACTORIES[backend_name](tmp_path, name))


@pytest.fixture
def server(make_server) -> Server:
    return make_server("source")


@pytest.fixture
def backend(server) -> ContentBackend:
    return server.backend


@pytest.fixture
def repo_key() -> str:
    """A repository key no other test (or run, on a shared Pulp) uses."""
    return f"ACME/tools/utils-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def rpms(tmp_path) -> Callable[..., list[Path]]:
    """rpms(count, prefix, version="1.0", start=0) -> freshly built RPM files (deterministic)."""
    counter = iter(range(10**6))

    def make(count: int, prefix: str = "pkg", version: str = "1.0", start: int = 0, **kw) -> list[Path]:
        return build_rpms(
            tmp_path / "rpms" / f"b{next(counter)}", count, prefix=prefix, version=version, start=start, **kw
        )

    return make


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        with state["lock"]:
            state["requests"].append(self.path)
        if state["fail_status"]:
            self.send_error(state["fail_status"])
            return
        super().do_GET()


@dataclass
class RepoServer:
    """A yum tree served over HTTP on 127.0.0.1, counting requests."""

    url: str
    state: dict

    @property
    def requests(self) -> list[str]:
        return list(self.state["requests"])

    def rpm_requests(self) -> list[str]:
        return [p for p in self.requests if p.endswith(".rpm")]

    def reset(self) -> None:
        self.state["requests"].clear()

    def fail_with(self, status: int | None) -> None:
        self.state["fail_status"] = status


@pytest.fixture
def serve_tree() -> Iterator[Callable[[Path], RepoServer]]:
    servers = []

    def start(directory: Path) -> RepoServer:
        handler = partial(_CountingHandler, directory=str(directory))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.state = {"requests": [], "lock": threading.Lock(), "fail_status": None}  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return RepoServer(f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.state)  # type: ignore[attr-defined]

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
