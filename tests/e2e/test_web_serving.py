"""How the dashboard is served: `iss run` (a thread of the runtime, stopped with it), `iss demo
--serve` (the URL and the source's admin login printed), the per-server session key, and a bad
web_listen refused."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consumers.run import Runtime
from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import UsageError
from iss_plugin.settings import load_settings
from iss_plugin.web.security import SECRET_NAME, session_secret
from iss_plugin.web.server import parse_listen

from .test_web_browser import free_port
from .web_setup import csrf_of


def test_iss_run_serves_the_dashboard_and_stops_it(source):
    port = free_port()
    app = App(load_settings(source.config))
    runtime = Runtime(app, ("relay",), listen=f"127.0.0.1:{port}").start()
    try:
        assert runtime.web is not None and runtime.web.url == f"http://127.0.0.1:{port}/"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health").json()["server_id"] == "source"
        assert httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False).status_code == 303
    finally:
        runtime.shutdown()
        app.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_run_without_serve_listens_nowhere(source):
    app = App(load_settings(source.config))
    runtime = Runtime(app, ("relay",)).start()
    try:
        assert runtime.web is None
    finally:
        runtime.shutdown()
        app.close()


def test_bad_web_listen_is_a_usage_error():
    for bad in ("8080", "localhost:", "host:port", "127.0.0.1:70000", ""):
        with pytest.raises(UsageError, match="is not host:port"):
            parse_listen(bad)
    assert parse_listen("[::1]:9000") == ("::1", 9000)


def test_session_secret_is_made_once_per_server_mode_0600(tmp_path):
    first = session_secret(tmp_path)
    assert len(first) >= 48 and session_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / SECRET_NAME).stat().st_mode) == 0o600
    assert session_secret(tmp_path / "other") != first


def test_iss_serve_refuses_a_bad_listen_setting(source):
    with source.config.open("a") as fh:
        fh.write('web_listen = "nowhere"\n')
    r = source.run("serve", expect=2)
    assert "web_listen = 'nowhere' is not host:port" in r.output


@pytest.mark.timeout(300)
def test_demo_serve_prints_the_url_and_a_login_that_works(tmp_path):
    port = free_port()
    iss = str(Path(sys.executable).parent / "iss")
    proc = subprocess.Popen(
        [iss, "demo", "--packages", "3", "--serve", "--listen", f"127.0.0.1:{port}", "--keep", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 240
        assert proc.stdout is not None
        while not any("log in as" in line for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text
        login, password = re.search(r"log in as (\S+) with the password (\S+)", text).groups()  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) as client:
            token = csrf_of(client.get("/login").text)
            r = client.post("/login", data={"login": login, "password": password, "csrf_token": token})
            assert r.status_code == 200 and "Log out" in r.text
            assert "dc-east" in client.get("/destinations").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_iss_run_keeps_its_workers_when_the_dashboard_port_is_taken(source, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(load_settings(source.config))
        runtime = Runtime(app, ("relay",), listen=f"127.0.0.1:{port}").start()
        try:
            assert runtime.web is None and any(t.is_alive() for t in runtime.threads)
            assert f"127.0.0.1:{port} (in use?)" in caplog.text and "running without the dashboard" in caplog.text
        finally:
            runtime.shutdown()
            app.close()
