"""A source server with two organizations, users of different scopes, a subscribed destination
and a parked message, served through the real FastAPI app (TestClient) or `iss serve`."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from kombu import Producer
from sqlalchemy import select

from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus.codec import CONTENT_TYPE, encode
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.topology import build, declare, export_queue_name
from iss_plugin.adapters.db.models import Subscription
from iss_plugin.bootstrap import App
from iss_plugin.domain import events as E
from iss_plugin.domain import policy as P
from iss_plugin.settings import load_settings

from .servers import Server
from .test_identity import PASSWORD, add_user

XSS = "<script>alert(1)</script>"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    server: Server
    app: App
    parked_id: str
    bundle_id: str  # a complete tgz export of ACME/base 1.0


def prepare(server: Server, tmp_path, bus_url: str = "memory://") -> Site:
    """`server` is the e2e `published_source` (ACME with the blessed view base 1.0)."""
    prefix = f"web{uuid.uuid4().hex[:8]}"
    with server.config.open("a") as fh:
        fh.write(f'\n[bus]\nurl = "{bus_url}"\nprefix = "{prefix}"\nexchange = "{prefix}"\n')
    s = server
    s.run("organization", "create", "--name", "Beta Org", "--label", "BETA")
    s.run("product", "create", "--organization", "BETA", "--name", XSS, "--label", "evil")
    s.run("repository", "create", "--organization", "BETA", "--product", "evil", "--name", "stuff")
    key = tmp_path / "dst.pub"
    key.write_text(s.json("keys", "show")["public_key"])
    s.run("destination", "add", "--name", "dc-east", "--server-id", "dst-east", "--public-key", str(key))
    s.run("destination", "subscribe", "--name", "dc-east", "--organization", "ACME", "--content-view", "base")
    s.run("destination", "subscribe", "--name", "dc-east", "--organization", "BETA", "--repository", "evil/stuff")
    exported = s.json(
        "content-export", "complete", "version", "--organization", "ACME", "--content-view", "base", "--format", "tgz"
    )
    app = App(load_settings(s.config))
    with app.session_factory() as session:  # what a refused bundle leaves (iss.bundle.rejected.v1)
        for sub in session.scalars(select(Subscription)):
            sub.rejections, sub.last_rejection = 2, f"rule_violation: {XSS} in {sub.organization}"
        session.commit()
    add_user(s, "ada", [(frozenset({P.ADMIN}), None)])
    add_user(s, "vera", [(frozenset({P.VIEW_DASHBOARD}), None)])
    add_user(s, "otto", [(frozenset({P.VIEW_DASHBOARD}), "ACME")])
    add_user(s, "nobody", [(frozenset({P.VIEW_PRODUCTS}), "ACME")])
    return Site(s, app, park_one(app, "ACME"), str(exported["bundle_id"]))


def park_one(app: App, organization: str) -> str:
    """A message in the export queue's parking queue, as the consumer parks it (headers and all)."""
    bus = app.settings.bus
    topology = build(bus, export=True, status_for=[app.server_id], import_for=[app.server_id])
    envelope = E.make_envelope(
        E.CONTENT_VIEW_PUBLISHED,
        "urn:iss:server:test",
        E.content_view_published(organization=organization, content_view="base", version="9.0", description=XSS),
    )
    headers = {
        policy.ROUTING_KEY_HEADER: "iss.content_view.published",
        policy.PARK_REASON_HEADER: "rule_violation",
        policy.ERROR_HEADER: f"ImportRuleViolation: {XSS}",
        policy.ATTEMPTS_HEADER: 1,
        policy.QUEUE_HEADER: export_queue_name(bus.prefix),
        policy.PARKED_AT_HEADER: "2026-01-01T00:00:00Z",
    }
    with make_kombu_connection(bus) as conn:
        declare(conn, topology)
        Producer(conn.channel()).publish(
            encode(envelope),
            exchange="",
            routing_key=topology.queue(export_queue_name(bus.prefix)).parked,
            headers=headers,
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            retry=False,
        )
    return str(envelope["id"])


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client, login: str, password: str = PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"login": login, "password": password, "csrf_token": token}, follow_redirects=False
    )
