"""Shared fixtures: real services or a clear failure under CI, throwaway databases."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

IN_CI = bool(os.environ.get("CI"))
PG_HOST, PG_PORT = "127.0.0.1", 5432


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def require_service(name: str, host: str, port: int) -> None:
    """Under CI a missing service fails the run; elsewhere the test is skipped."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        message = f"{name} is not reachable on {host}:{port} ({e})"
        if IN_CI:
            pytest.fail(message + " — CI requires it", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}"


@pytest.fixture
def postgres_url(postgres_server_url):
    """A throwaway PostgreSQL database for one test, dropped at the end."""
    import psycopg

    name = f"iss_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server_url}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Runs a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'iss.db'}"
    return request.getfixturevalue("postgres_url")
