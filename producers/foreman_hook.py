#!/usr/bin/env python3
"""Foreman webhook bridge: a Katello "content view publish succeeded" webhook -> iss.content_view.published.v1.

Stand-alone: needs only pika, the standard library and iss's `schemas` package (no iss_plugin),
so it can run on the Foreman host, e.g. as a foreman_webhooks shell hook
(foreman_webhooks + smart_proxy_shellhooks) or from any script that receives the webhook:

    foreman_hook.py --url amqp://iss:secret@mq.example:5672/ --exchange iss < payload.json
    foreman_hook.py --file payload.json --dry-run        # print the event, publish nothing

Input: the JSON a foreman_webhooks webhook sends for `actions.katello.content_view.publish_succeeded`:
an object with `event_name` and the template's `payload`, which names the content view, its
organization and the version. Both the flat variables of Katello's example template
(`content_view_label`, `organization_label`, `content_view_version_name`, ...) and nested objects
(`content_view: {id, name, label}`, `organization: {...}`, `version: "2.0"`) are understood; see
EXAMPLE_PAYLOAD (`--example` prints it). Foreman's numeric ids are not carried: they mean nothing
on another server.

The event id is derived from organization/content view/version, so a webhook Foreman delivers
twice yields the same event and iss handles it once.

Exit codes: 0 published and confirmed · 2 the payload is unusable or the event breaks its schema ·
3 the broker did not confirm it (nack, unroutable, timeout) · 4 cannot reach the broker or the
exchange does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

try:
    import schemas
except ImportError:  # run from a source checkout: producers/../schemas
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import schemas

EVENT_TYPE = "iss.content_view.published.v1"
ROUTING_KEY = "iss.content_view.published"
SCHEMA = f"events/{EVENT_TYPE}.json"
DATASCHEMA = f"https://iss.example/schemas/{SCHEMA}"
CONTENT_TYPE = "application/cloudevents+json"
ACCEPTED_EVENTS = ("content_view.publish_succeeded", "content_view.publish_suceeded")  # Katello's example has the typo
ID_NAMESPACE = uuid.UUID("6f1d3c2e-8f5a-4c1b-9e7d-2a4b6c8d0e1f")

EXIT_OK, EXIT_INVALID, EXIT_UNCONFIRMED, EXIT_UNREACHABLE = 0, 2, 3, 4

EXAMPLE_PAYLOAD = {
    "event_name": "actions.katello.content_view.publish_succeeded",
    "context": {"user_login": "admin", "remote_ip": "192.0.2.10"},
    "payload": {
        "content_view_version_id": 42,
        "content_view_version_name": "RHEL 8 Base 3.0",
        "content_view_id": 7,
        "content_view_name": "RHEL 8 Base",
        "content_view_label": "RHEL_8_Base",
        "organization_id": 1,
        "organization_name": "ACME Corporation",
        "organization_label": "ACME",
        "description": "monthly refresh",
        "task": {
            "id": "1b0d7a0e-0c6f-4f65-9a4e-3c2b1a098765",
            "label": "Actions::Katello::ContentView::Publish",
            "result": "success",
            "state": "stopped",
        },
    },
}


class HookError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _pick(payload: dict[str, Any], flat: str, nested: str, key: str) -> Any:
    value = payload.get(flat)
    if value in (None, ""):
        obj = payload.get(nested)
        value = obj.get(key) if isinstance(obj, dict) else None
    return value


def _version(payload: dict[str, Any]) -> str | None:
    for key in ("version", "content_view_version"):
        value = payload.get(key)
        if isinstance(value, dict):
            if "major" in value:
                return f"{value['major']}.{value.get('minor', 0)}"
            value = value.get("version") or value.get("name")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value) if isinstance(value, float) else f"{value}.0"
        if isinstance(value, str) and value.strip():
            m = re.search(r"(\d+)\.(\d+)\s*$", value.strip())
            if m:
                return f"{int(m.group(1))}.{int(m.group(2))}"
    if "major" in payload:
        return f"{payload['major']}.{payload.get('minor', 0)}"
    name = payload.get("content_view_version_name")
    if isinstance(name, str):
        m = re.search(r"(\d+)\.(\d+)\s*$", name.strip())
        if m:
            return f"{int(m.group(1))}.{int(m.group(2))}"
    return None


def to_event(webhook: dict[str, Any], *, source: str, time: datetime | None = None) -> dict[str, Any]:
    """Map a foreman_webhooks body to an iss.content_view.published.v1 envelope (not yet validated)."""
    if not isinstance(webhook, dict):
        raise HookError("the webhook body is not a JSON object", EXIT_INVALID)
    event_name = webhook.get("event_name")
    if event_name is not None and not str(event_name).endswith(ACCEPTED_EVENTS):
        raise HookError(
            f"event {event_name!r} is not a content view publish (expected "
            f"actions.katello.content_view.publish_succeeded)",
            EXIT_INVALID,
        )
    payload = webhook.get("payload", webhook)
    if not isinstance(payload, dict):
        raise HookError("the webhook's payload is not a JSON object", EXIT_INVALID)
    organization = _pick(payload, "organization_label", "organization", "label")
    content_view = _pick(payload, "content_view_label", "content_view", "label")
    version = _version(payload)
    missing = [
        name
        for name, value in (
            ("organization label", organization),
            ("content view label", content_view),
            ("content view version (X.Y)", version),
        )
        if not value
    ]
    if missing:
        raise HookError(
            "the payload does not say "
            + ", ".join(missing)
            + " (the webhook template must include organization_label, content_view_label and "
            "content_view_version_name or version)",
            EXIT_INVALID,
        )
    data = {
        "organization": str(organization),
        "content_view": str(content_view),
        "version": version,
        "origin": "foreman",
    }
    for key, value in (
        ("organization_name", _pick(payload, "organization_name", "organization", "name")),
        ("content_view_name", _pick(payload, "content_view_name", "content_view", "name")),
        ("description", payload.get("description")),
    ):
        if isinstance(value, str) and value:
            data[key] = value
    stamp = (time or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{EVENT_TYPE}:{organization}/{content_view}/{version}")),
        "source": source,
        "type": EVENT_TYPE,
        "time": stamp,
        "datacontenttype": "application/json",
        "dataschema": DATASCHEMA,
        "subject": f"{organization}/{content_view}/{version}",
        "data": data,
    }


def validate(event: dict[str, Any]) -> None:
    problems = schemas.problems(SCHEMA, event)
    if problems:
        raise HookError("the event does not match its schema:\n  - " + "\n  - ".join(problems), EXIT_INVALID)


def publish(event: dict[str, Any], *, url: str, exchange: str, timeout: float) -> None:
    """Publish with confirms and mandatory routing; HookError if not confirmed."""
    import pika
    from pika import exceptions as px

    def on_alarm(_sig: int, _frame: FrameType | None) -> NoReturn:
        raise TimeoutError

    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.connection_attempts = 1
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            connection = pika.BlockingConnection(params)
        except (px.AMQPError, OSError) as e:
            raise HookError(f"cannot reach the broker at {_safe(url)}: {e!r}", EXIT_UNREACHABLE) from None
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            props = pika.BasicProperties(
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=event["id"],
                type=event["type"],
            )
            channel.basic_publish(exchange, ROUTING_KEY, body, props, mandatory=True)
        except px.UnroutableError:
            raise HookError(
                f"the broker returned the event: nothing is bound to {ROUTING_KEY!r} on exchange {exchange!r}",
                EXIT_UNCONFIRMED,
            ) from None
        except px.NackError:
            raise HookError("the broker refused (nacked) the event", EXIT_UNCONFIRMED) from None
        except px.ChannelClosedByBroker as e:
            raise HookError(
                f"the broker closed the channel: {e.reply_code} {e.reply_text} (does exchange {exchange!r} exist?)",
                EXIT_UNREACHABLE,
            ) from None
        except (px.AMQPError, OSError) as e:
            raise HookError(f"the event was not confirmed: {e!r}", EXIT_UNCONFIRMED) from None
        finally:
            try:
                if connection.is_open:
                    connection.close()
            except Exception:
                pass
    except TimeoutError:
        raise HookError(f"no confirm from the broker within {timeout:g} s", EXIT_UNCONFIRMED) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _safe(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="foreman_hook.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("ISS_BUS__URL", "amqp://guest:guest@127.0.0.1:5672/"),
        help="AMQP URL of the iss broker (default $ISS_BUS__URL)",
    )
    parser.add_argument(
        "--exchange",
        default=os.environ.get("ISS_BUS__EXCHANGE", "iss"),
        help="the iss topic exchange (default $ISS_BUS__EXCHANGE or 'iss')",
    )
    parser.add_argument("--file", type=Path, help="read the webhook body from FILE (default: standard input)")
    parser.add_argument(
        "--source",
        default=f"urn:foreman:{socket.gethostname()}",
        help="CloudEvents source of the event (default urn:foreman:<hostname>)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker's confirm")
    parser.add_argument("--dry-run", action="store_true", help="print the event and publish nothing")
    parser.add_argument("--example", action="store_true", help="print an example webhook body and exit")
    args = parser.parse_args(argv)
    if args.example:
        print(json.dumps(EXAMPLE_PAYLOAD, indent=2))
        return EXIT_OK
    try:
        try:
            text = args.file.read_text(encoding="utf-8") if args.file else sys.stdin.read()
        except OSError as e:
            raise HookError(f"cannot read {args.file}: {e.strerror}", EXIT_INVALID) from None
        try:
            webhook = json.loads(text)
        except ValueError as e:
            raise HookError(f"the webhook body is not JSON: {e}", EXIT_INVALID) from None
        event = to_event(webhook, source=args.source)
        validate(event)
        if args.dry_run:
            print(json.dumps(event, indent=2))
            return EXIT_OK
        publish(event, url=args.url, exchange=args.exchange, timeout=args.timeout)
    except HookError as e:
        print(f"foreman_hook: {e}", file=sys.stderr)
        return e.code
    print(json.dumps({"published": event["id"], "type": EVENT_TYPE, "subject": event["subject"]}))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
