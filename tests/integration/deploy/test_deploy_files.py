"""deploy/: the PostgreSQL set-up script against the real server, the RabbitMQ policies imported
into a throwaway vhost, the link example as the generator makes it, the systemd units hardened."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from iss_plugin.adapters.bus.links import main as links_main
from tests.conftest import IN_CI, PG_HOST, PG_PORT
from tests.integration.bus.conftest import rabbit_vhost, rabbitmqctl, session_vhost  # noqa: F401 - the vhost fixtures

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
HARDENING = {
    "User": "iss",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
}


def _need_psql() -> None:
    """psql is installed by scripts/start-services.sh: missing under CI is a failure, not a skip."""
    if shutil.which("psql") is None:
        if IN_CI:
            pytest.fail("psql is not installed (scripts/start-services.sh installs postgresql-client)")
        pytest.skip("psql is not installed")


def _psql(sql: str) -> str:
    cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-tAc", sql]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.postgres
def test_postgresql_setup_makes_role_database_and_schema_and_runs_again(tmp_path, postgres_server_url):
    _need_psql()
    name = f"iss_setup_{uuid.uuid4().hex[:8]}"
    config = tmp_path / "settings.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nserver_id = "s1"\n'
        f'database_url = "postgresql+psycopg://{name}@{PG_HOST}:{PG_PORT}/{name}"\n'
    )
    iss = tmp_path / "iss"  # the command the script runs for `iss db upgrade`
    iss.write_text(f'#!/bin/sh\nexec {sys.executable} -c "from iss_plugin.cli import main; main()" "$@"\n')
    iss.chmod(0o755)
    env = {
        **os.environ,
        "ISS_DB_NAME": name,
        "ISS_DB_USER": name,
        "PSQL": f"psql -h {PG_HOST} -p {PG_PORT} -U postgres",
        "ISS": str(iss),
        "ISS_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
    }
    try:
        for _ in range(2):  # idempotent
            run = subprocess.run(
                ["sh", str(DEPLOY / "postgresql" / "setup.sh")], env=env, capture_output=True, text=True, timeout=300
            )
            assert run.returncode == 0, run.stdout + run.stderr
        assert _psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'") == name
        tables = subprocess.run(
            [
                "psql",
                "-h",
                PG_HOST,
                "-p",
                str(PG_PORT),
                "-U",
                "postgres",
                "-d",
                name,
                "-tAc",
                "SELECT version_num FROM alembic_version",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert tables  # the schema is at a revision
    finally:
        _psql_quiet(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _psql_quiet(f'DROP ROLE IF EXISTS "{name}"')


def test_postgresql_setup_refuses_a_bad_name_and_creates_nothing():
    _need_psql()
    env = {**os.environ, "ISS_DB_NAME": "iss; DROP", "ISS_DB_USER": "iss", "PSQL": "false"}
    run = subprocess.run(["sh", str(DEPLOY / "postgresql" / "setup.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert "letters, digits and _" in run.stderr


def _psql_quiet(sql: str) -> None:
    subprocess.run(["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-c", sql], capture_output=True)


@pytest.mark.rabbitmq
def test_rabbitmq_policies_import_into_a_vhost(rabbit_vhost):  # noqa: F811 - the fixture imported above
    vhost = rabbit_vhost.rsplit("/", 1)[1]
    defs = json.loads((DEPLOY / "rabbitmq" / "policies.json").read_text())
    for p in defs["policies"]:
        p["vhost"] = vhost
    subprocess.run(
        ["rabbitmqctl", "import_definitions"],
        input=json.dumps(defs),
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
    )
    listed = rabbitmqctl("list_policies", "-p", vhost, "--quiet", "--no-table-headers").stdout
    assert {p["name"] for p in defs["policies"]} <= {
        line.split("\t")[1] for line in listed.splitlines() if "\t" in line
    }


def test_link_example_is_what_the_generator_makes(capsys):
    links_main(
        [
            "--source", "cdn-source", "--destination", "site-b",
            "--source-uri", "amqps://iss-link:SECRET@mq.site-a.example:5671/iss",
            "--destination-uri", "amqps://iss-link:SECRET@mq.site-b.example:5671/iss",
            "--source-vhost", "iss", "--destination-vhost", "iss",
        ]
    )  # fmt: skip
    assert json.loads(capsys.readouterr().out) == json.loads((DEPLOY / "rabbitmq" / "link.example.json").read_text())


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_every_unit_is_hardened_and_names_an_example_settings_file(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(DEPLOY / "systemd" / unit)
    service = parser["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{unit}: {key}"
    assert "/var/lib/iss" in service.get("ReadWritePaths", "")
    config = service["Environment"].split("ISS_CONFIG=", 1)[1]
    assert (DEPLOY / "examples" / Path(config).name).is_file(), f"{unit}: no example for {config}"
