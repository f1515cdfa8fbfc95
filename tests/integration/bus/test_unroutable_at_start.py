"""`iss worker ROLE` and `iss run` warn at start when unroutable messages wait (how many, and what to
run), as real processes on the session's throwaway vhost; a broker that does not answer the check
does not stop the start."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import declare_all
from .test_consumer_policy import published
from .test_unroutable import NOWHERE, publish
from .test_unroutable_cli import server_config

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[3]
DOWN = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1


def started(config: Path, *args: str, until: str, timeout: float = 30.0) -> tuple[str, bool]:
    """Start `iss --config CONFIG ARGS...`, read its stderr until a line holds `until` (or timeout),
    then stop it with SIGTERM: (what it wrote, whether it was still running when the line came)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import sys; from iss_plugin.cli.main import main; sys.argv[0] = 'iss'; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    lines: list[str] = []
    running = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if until in line:
                time.sleep(0.5)  # a start that failed after the check would have exited by now
                running = process.poll() is None
                break
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return "".join(lines), running


@pytest.mark.parametrize("command", [("worker", "status"), ("run", "--role", "status", "--no-serve")])
def test_a_start_warns_when_unroutable_messages_wait(tmp_path, amqp_bus, command):
    declare_all(amqp_bus)
    publish(amqp_bus, [published("1.0"), published("2.0")], routing_key=NOWHERE)
    config = server_config(tmp_path, amqp_bus)
    err, running = started(config, *command, until="unroutable")
    assert running, err
    assert (
        f"WARNING 2 unroutable messages wait in {amqp_bus.prefix}.unroutable" in err
        and "run `iss bus unroutable list`" in err
    ), err


def test_no_warning_when_none_wait(tmp_path, amqp_bus):
    declare_all(amqp_bus)
    config = server_config(tmp_path, amqp_bus)
    err, running = started(config, "worker", "status", until="consuming", timeout=15)
    assert running and "consuming" in err and "unroutable" not in err, err


def test_a_broker_that_does_not_answer_the_check_does_not_stop_the_start(tmp_path, amqp_bus):
    config = server_config(tmp_path, amqp_bus, url=DOWN)
    err, running = started(config, "worker", "status", until="could not count the unroutable messages")
    assert running, err
    assert "starting anyway" in err and "WARNING" not in err.split("could not count")[0], err
