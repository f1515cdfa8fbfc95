"""Bus fixtures: a throwaway RabbitMQ vhost per session (deleted at the end), unique names per test,
the same policy tests on memory:// and on RabbitMQ, and a migrated SQLite database."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.settings import BusSettings
from tests.conftest import IN_CI, require_service

RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "broker_restart: restarts the shared RabbitMQ app (stop_app/start_app); "
        "runs under CI (our tests are the broker's only users there), elsewhere "
        "opt in with ISS_TEST_BROKER_RESTART=1 or -m broker_restart",
    )


def pytest_collection_modifyitems(config, items):
    opted_in = (
        os.environ.get("CI", "").lower() not in ("", "0", "false")
        or os.environ.get("ISS_TEST_BROKER_RESTART") == "1"
        or "broker_restart" in (config.option.markexpr or "")
    )
    if opted_in:
        return
    skip = pytest.mark.skip(reason="restarts the shared broker: set ISS_TEST_BROKER_RESTART=1 or -m broker_restart")
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:  # this hook sees every collected test: decide for this directory's only
        if "broker_restart" in item.keywords and str(item.fspath).startswith(here + os.sep):
            item.add_marker(skip)


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="session")
def session_vhost():
    """amqp:// URL of a vhost made for this test session and deleted at its end."""
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not available to make a throwaway vhost"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    vhost = f"iss-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture
def rabbit_vhost(session_vhost):
    """The session's vhost; every queue in it is deleted after each test. Each quorum queue reserves
    file handles of the broker's budget (~930 under the usual nofile limit of 1024): a session's
    worth of queues left behind exhausted it, and the broker then stalled every new connection
    and every rabbitmqctl command (seen in CI: AMQP handshake timeouts, add_vhost hanging)."""
    yield session_vhost
    delete_all_queues(session_vhost)


def delete_all_queues(url: str) -> None:
    import pika

    vhost = url.rsplit("/", 1)[1]
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name", check=False)
    names = listed.stdout.split()
    if not names:
        return
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        conn.close()


def unique_bus(url: str, **overrides) -> BusSettings:
    tag = uuid.uuid4().hex[:10]
    values = {
        "url": url,
        "exchange": f"t-{tag}",
        "prefix": f"t-{tag}",
        "retry_delays_ms": (300, 600),
        "max_attempts": 3,
        "prefetch": 4,
        "heartbeat": 10,
        "confirm_timeout": 10.0,
    }
    values.update(overrides)
    return BusSettings(**values)


@pytest.fixture
def amqp_bus(rabbit_vhost) -> BusSettings:
    return unique_bus(rabbit_vhost)


@pytest.fixture(params=["memory", "rabbitmq"])
def any_bus(request) -> BusSettings:
    """The same assertions on kombu memory:// and on the real broker."""
    if request.param == "memory":
        return unique_bus("memory://")
    return unique_bus(request.getfixturevalue("rabbit_vhost"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    from iss_plugin.adapters.db import migrate

    url = f"sqlite:///{tmp_path / 'iss.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def session_factory(sqlite_url):
    from iss_plugin.adapters.db.engine import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def declare_all(bus: BusSettings, **roles) -> T.Topology:
    topology = T.build(bus, **roles)
    with make_kombu_connection(bus) as conn:
        T.declare(conn, topology)
    return topology


def drain(bus: BusSettings, queue: str, *, expect: int | None = None, timeout: float = 10.0) -> list:
    """Take messages off `queue` (no ack needed): until `expect` arrived or `timeout`, or until empty."""
    from kombu import Queue

    got = []
    deadline = time.monotonic() + timeout
    with make_kombu_connection(bus) as conn:
        channel = conn.channel()
        q = Queue(queue)(channel)
        while True:
            message = q.get(no_ack=True)
            if message is not None:
                got.append(message)
                if expect is not None and len(got) >= expect:
                    break
                continue
            if expect is None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    return got


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Running:
    """A consumer running in a thread; stops it on exit."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.thread = threading.Thread(target=consumer.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc):
        self.consumer.should_stop = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "consumer did not stop"
