"""Online destinations through the real app: GET /api/v1/destinations and /api/v1/subscriptions
show online and url, POST takes a url, PATCH /api/v1/destinations/{name} makes one online or
offline; bad input is 4xx with nothing changed."""

from __future__ import annotations

import pytest

from consumers.demo import ORG
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.services import audit


def listed(api) -> dict:
    r = api.client.get("/api/v1/destinations", headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    return {d["name"]: (d["online"], d["url"]) for d in r.json()}


@pytest.fixture
def east(api):
    body = {"name": "east", "server_id": "east-1", "public_key": Signer.generate().public_pem}
    r = api.client.post("/api/v1/destinations", json=body, headers=api.auth("admin"))
    assert r.status_code == 201 and (r.json()["online"], r.json()["url"]) == (False, None)
    return api


def test_a_destination_added_with_a_url_is_listed_online(api):
    body = {"name": "west", "server_id": "west-1", "public_key": Signer.generate().public_pem}
    r = api.client.post("/api/v1/destinations", json=body | {"url": "https://west:8443"}, headers=api.auth("admin"))
    assert r.status_code == 201 and (r.json()["online"], r.json()["url"]) == (True, "https://west:8443")
    assert listed(api) == {"west": (True, "https://west:8443")}
    bad = body | {"name": "north", "server_id": "north-1", "public_key": Signer.generate().public_pem, "url": "x"}
    assert api.client.post("/api/v1/destinations", json=bad, headers=api.auth("admin")).status_code == 400
    assert listed(api) == {"west": (True, "https://west:8443")}


def test_patch_makes_a_destination_online_then_offline_and_the_listings_show_it(east):
    api = east
    url = "/api/v1/destinations/east"
    r = api.client.patch(url, json={"online": True, "url": "http://east.example.com:8000"}, headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["online"], r.json()["url"], r.json()["server_id"]) == (
        True,
        "http://east.example.com:8000",
        "east-1",
    )
    assert listed(api) == {"east": (True, "http://east.example.com:8000")}
    sub = {"destination": "east", "organization": ORG, "content_view": "base"}
    assert api.client.post("/api/v1/subscriptions", json=sub, headers=api.auth("admin")).status_code == 201
    [row] = api.client.get("/api/v1/subscriptions", headers=api.auth("admin")).json()
    assert (row["online"], row["url"]) == (True, "http://east.example.com:8000")

    r = api.client.patch(url, json={"online": False}, headers=api.auth("admin"))
    assert r.status_code == 200 and (r.json()["online"], r.json()["url"]) == (False, None)
    assert listed(api) == {"east": (False, None)}
    entries = audit.list_audit(api.app.uow(), action="destination.update")
    assert [(e["actor"], e["target"], e["details"]["online"]) for e in entries] == [
        ("admin", "east", False),
        ("admin", "east", True),
    ]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/destinations/nowhere", {"online": False}, 404),
        ("/api/v1/destinations/east", {"online": True}, 400),
        ("/api/v1/destinations/east", {"online": False, "url": "https://x.example.com"}, 400),
        ("/api/v1/destinations/east", {"online": True, "url": "ftp://east"}, 400),
        ("/api/v1/destinations/east", {"online": True, "url": "https://"}, 400),
        ("/api/v1/destinations/east", {"online": True, "url": "https://east", "extra": 1}, 422),
        ("/api/v1/destinations/east", {}, 422),
    ],
)
def test_bad_patches_change_nothing(east, path, body, status):
    api = east
    r = api.client.patch(path, json=body, headers=api.auth("admin"))
    assert r.status_code == status, r.text
    assert listed(api) == {"east": (False, None)}
    assert audit.list_audit(api.app.uow(), action="destination.update") == []


def test_patch_needs_manage_destinations(east):
    api = east
    body = {"online": True, "url": "https://east.example.com"}
    assert api.client.patch("/api/v1/destinations/east", json=body).status_code == 401
    assert api.client.patch("/api/v1/destinations/east", json=body, headers=api.auth("exporter")).status_code == 403
    assert listed(api) == {"east": (False, None)}
