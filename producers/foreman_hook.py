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
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

try:
    import schemas
except ImportError:  # run from a source checkout: producers/../schemas
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import schemas

from schemas.foreman_webhook import (
    CONTENT_TYPE,
    EVENT_TYPE,
    EXAMPLE_PAYLOAD,
    ROUTING_KEY,
    SCHEMA,
    WebhookPayloadError,
)
from schemas.foreman_webhook import to_event as _to_event

EXIT_OK, EXIT_INVALID, EXIT_UNCONFIRMED, EXIT_UNREACHABLE = 0, 2, 3, 4


class HookError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def to_event(webhook: dict[str, Any], *, source: str, time: datetime | None = None) -> dict[str, Any]:
    """Map a foreman_webhooks body to an iss.content_view.published.v1 envelope (not yet validated)."""
    try:
        return _to_event(webhook, source=source, time=time)
    except WebhookPayloadError as e:
        raise HookError(str(e), EXIT_INVALID) from None


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
