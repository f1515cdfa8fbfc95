"""Serving the web application with uvicorn: in the foreground (`iss serve`) or in a thread of
another process (`iss run`, `iss demo --serve`), stopped with it."""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass, field

import uvicorn

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import UsageError

from .app import create_app


def parse_listen(text: str, what: str = "web_listen") -> tuple[str, int]:
    """'host:port' (IPv6 as [::1]:8080) -> (host, port); a clear error otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{what} = {text!r} is not host:port (for example 127.0.0.1:8080); fix the setting")
    return host, int(port)


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(app: App, host: str, port: int, *, log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(app), host=host, port=port, log_level=log_level, proxy_headers=True, forwarded_allow_ips="127.0.0.1"
    )
    return uvicorn.Server(config)


@dataclass
class BackgroundServer:
    """uvicorn in a daemon thread; the owning process keeps its own signal handlers and calls stop()."""

    app: App
    host: str
    port: int
    log_level: str = "warning"
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = field(default=None)

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self.server = make_server(self.app, self.host, self.port, log_level=self.log_level)
        # uvicorn installs signal handlers only in the main thread: this one leaves them to its owner
        self.thread = threading.Thread(target=self._run, name=f"iss-web@{self.app.server_id}", daemon=True)
        self.thread.start()
        stop_at = threading.Event()
        waited = 0.0
        while not self.server.started and waited < timeout:
            if not self.thread.is_alive():
                raise UsageError(f"the dashboard could not listen on {self.host}:{self.port} (in use?); see the log")
            stop_at.wait(0.05)
            waited += 0.05
        return self

    def _run(self) -> None:
        assert self.server is not None, "start() made the server"
        with suppress(SystemExit):  # uvicorn exits when it cannot bind; start() reports it
            self.server.run()

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
