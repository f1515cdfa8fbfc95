"""producers/foreman_hook.py as operators run it: a separate process, only pika and schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import decode, envelope_problems

from .conftest import declare_all, drain

pytestmark = pytest.mark.rabbitmq
HOOK = Path(__file__).resolve().parents[3] / "producers" / "foreman_hook.py"


def run_hook(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HOOK), *args], input=stdin, capture_output=True, text=True, timeout=60)


def example() -> dict:
    return json.loads(run_hook("--example").stdout)


def test_hook_imports_no_iss_plugin():
    code = (
        "import sys, runpy; sys.argv=['x','--example']; "
        "import producers.foreman_hook as h; "
        "assert not [m for m in sys.modules if m.startswith('iss_plugin')], 'iss_plugin imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=HOOK.parents[1], timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_publish_succeeded_webhook_becomes_a_confirmed_event(amqp_bus, tmp_path):
    declare_all(amqp_bus, export=True)
    payload = tmp_path / "webhook.json"
    payload.write_text(json.dumps(example()))
    result = run_hook(
        "--url",
        amqp_bus.url,
        "--exchange",
        amqp_bus.exchange,
        "--file",
        str(payload),
        "--source",
        "urn:foreman:foreman.example.com",
    )
    assert result.returncode == 0, result.stderr
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=1)
    event = decode(got[0].body)
    assert envelope_problems(event) == []
    assert event["type"] == "iss.content_view.published.v1"
    assert event["source"] == "urn:foreman:foreman.example.com"
    assert event["data"] == {
        "organization": "ACME",
        "organization_name": "ACME Corporation",
        "content_view": "RHEL_8_Base",
        "content_view_name": "RHEL 8 Base",
        "version": "3.0",
        "description": "monthly refresh",
        "origin": "foreman",
    }
    assert json.loads(result.stdout)["published"] == event["id"]


def test_stdin_and_a_redelivered_webhook_give_the_same_event_id(amqp_bus):
    declare_all(amqp_bus, export=True)
    body = json.dumps(example())
    for _ in range(2):
        assert run_hook("--url", amqp_bus.url, "--exchange", amqp_bus.exchange, stdin=body).returncode == 0
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=2)
    assert len({decode(m.body)["id"] for m in got}) == 1  # the consumer's idempotency absorbs the second


def test_unroutable_event_exits_3(amqp_bus):
    """An exchange with no binding and no alternate exchange returns the mandatory publish."""
    from kombu import Exchange

    from iss_plugin.adapters.bus.connection import make_kombu_connection

    with make_kombu_connection(amqp_bus) as conn:
        Exchange(amqp_bus.exchange, "topic", durable=True)(conn.channel()).declare()
    result = run_hook("--url", amqp_bus.url, "--exchange", amqp_bus.exchange, stdin=json.dumps(example()))
    assert result.returncode == 3, result.stderr
    assert "returned the event" in result.stderr


def test_missing_exchange_exits_4(amqp_bus):
    result = run_hook("--url", amqp_bus.url, "--exchange", amqp_bus.exchange + "-nope", stdin=json.dumps(example()))
    assert result.returncode == 4, result.stderr
    assert "does not exist" in result.stderr or "404" in result.stderr


def test_unreachable_broker_exits_4():
    result = run_hook("--url", "amqp://guest:guest@127.0.0.1:1/", "--timeout", "5", stdin=json.dumps(example()))
    assert result.returncode == 4, result.stderr
    assert "cannot reach the broker" in result.stderr


@pytest.mark.parametrize(
    "body, message",
    [
        ("not json", "not JSON"),
        ('{"event_name": "actions.katello.repository.sync_succeeded", "payload": {}}', "not a content view publish"),
        (
            '{"event_name": "actions.katello.content_view.publish_succeeded", "payload": {"content_view_label": "cv"}}',
            "organization label",
        ),
        (
            (
                '{"event_name": "actions.katello.content_view.publish_succeeded", "payload": {"organization_label": "ACME",'
                ' "content_view_label": "bad label!", "content_view_version_name": "x 1.0"}}'
            ),
            "data/content_view",
        ),
    ],
)
def test_unusable_payloads_exit_2_and_publish_nothing(amqp_bus, body, message):
    declare_all(amqp_bus, export=True)
    result = run_hook("--url", amqp_bus.url, "--exchange", amqp_bus.exchange, stdin=body)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert drain(amqp_bus, T.export_queue_name(amqp_bus.prefix)) == []
