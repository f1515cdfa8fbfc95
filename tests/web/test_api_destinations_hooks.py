"""Destinations, subscriptions and the Foreman webhook through the real app."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from consumers.demo import ORG
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.db import models as m
from schemas.foreman_webhook import EXAMPLE_PAYLOAD

from .conftest import signed


def outbox_published(app) -> int:
    with app.session_factory() as s:
        return s.scalar(
            select(func.count())
            .select_from(m.OutboxEvent)
            .where(
                m.OutboxEvent.type == "iss.content_view.published.v1",
                m.OutboxEvent.body["data"]["origin"].as_string() == "foreman",
            )
        )


def test_destinations_and_subscriptions(api):
    c, key = api.client, Signer.generate().public_pem
    body = {"name": "east", "server_id": "east-1", "public_key": key}
    assert c.post("/api/v1/destinations", json=body).status_code == 401
    assert c.post("/api/v1/destinations", json=body, headers=api.auth("exporter")).status_code == 403
    r = c.post("/api/v1/destinations", json=body, headers=api.auth("admin"))
    assert r.status_code == 201 and r.json()["fingerprint"].startswith("sha256:")
    assert c.post("/api/v1/destinations", json=body, headers=api.auth("admin")).status_code == 400  # exists
    bad_key = {**body, "name": "west", "server_id": "west-1", "public_key": "not a key"}
    assert c.post("/api/v1/destinations", json=bad_key, headers=api.auth("admin")).status_code == 400
    assert [d["name"] for d in c.get("/api/v1/destinations", headers=api.auth("admin")).json()] == ["east"]
    assert c.get("/api/v1/destinations", headers=api.auth("viewer")).status_code == 403

    sub = {"destination": "east", "organization": ORG, "content_view": "base"}
    assert c.post("/api/v1/subscriptions", json=sub, headers=api.auth("exporter")).status_code == 403
    r = c.post("/api/v1/subscriptions", json=sub, headers=api.auth("admin"))
    assert r.status_code == 201 and r.json()["created"] is True
    assert c.post("/api/v1/subscriptions", json=sub, headers=api.auth("admin")).json()["created"] is False
    both = {**sub, "repository": "acme-tools/utils"}
    assert c.post("/api/v1/subscriptions", json=both, headers=api.auth("admin")).status_code == 400
    nowhere = {**sub, "destination": "nowhere"}
    assert c.post("/api/v1/subscriptions", json=nowhere, headers=api.auth("admin")).status_code == 404
    listed = c.get("/api/v1/subscriptions", headers=api.auth("admin")).json()
    assert [(s["destination"], s["content_view"]) for s in listed] == [("east", "base")]
    assert c.get("/api/v1/subscriptions", headers=api.auth("viewer")).status_code == 403
    assert c.get(f"/api/v1/subscriptions?organization={ORG}", headers=api.auth("other")).status_code == 403


def test_webhook_without_or_with_a_wrong_signature_writes_nothing(api):
    body = json.dumps(EXAMPLE_PAYLOAD).encode()
    url = "/api/v1/hooks/foreman"
    assert api.client.post(url, content=body).status_code == 401
    wrong = {"X-Iss-Signature": signed(body, b"another-secret-entirely")}
    assert api.client.post(url, content=body, headers=wrong).status_code == 401
    tampered = {"X-Iss-Signature": signed(body)}
    assert api.client.post(url, content=body + b" ", headers=tampered).status_code == 401
    assert outbox_published(api.app) == 0


def test_webhook_with_the_right_signature_writes_exactly_one_event(api):
    body = json.dumps(EXAMPLE_PAYLOAD).encode()
    r = api.client.post("/api/v1/hooks/foreman", content=body, headers={"X-Iss-Signature": signed(body)})
    assert r.status_code == 202, r.text
    assert r.json() | {"event_id": None} == {
        "event_id": None,
        "duplicate": False,
        "organization": "ACME",
        "content_view": "RHEL_8_Base",
        "version": "3.0",
    }
    again = api.client.post("/api/v1/hooks/foreman", content=body, headers={"X-Iss-Signature": signed(body)})
    assert again.json()["duplicate"] is True and again.json()["event_id"] == r.json()["event_id"]
    assert outbox_published(api.app) == 1


def test_webhook_refuses_other_events_and_garbage(api):
    for body in (b"not json", json.dumps({"event_name": "host_created.event.foreman", "payload": {}}).encode(), b"[]"):
        r = api.client.post("/api/v1/hooks/foreman", content=body, headers={"X-Iss-Signature": signed(body)})
        assert r.status_code == 422, r.text
    assert outbox_published(api.app) == 0


def test_webhook_is_off_without_a_secret_file(tmp_path):
    from fastapi.testclient import TestClient

    from consumers.demo import make_server
    from iss_plugin.web.app import create_app

    app = make_server(tmp_path, "plain")
    try:
        with TestClient(create_app(app)) as client:
            body = json.dumps(EXAMPLE_PAYLOAD).encode()
            r = client.post("/api/v1/hooks/foreman", content=body, headers={"X-Iss-Signature": signed(body)})
            assert r.status_code == 404 and "foreman_hook_secret_file" in r.json()["message"]
    finally:
        app.close()
