"""The dashboard through the real FastAPI app (TestClient) over a real SQLite database made by the
CLI: login and logout, permissions and organization scope on every page, escaping, CSRF, parked
replay/discard on memory://, and /metrics."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from iss_plugin.services import audit, parking
from iss_plugin.web.app import create_app

from .web_setup import XSS, Site, csrf_of, log_in, park_one, prepare

PAGES = ["/", "/destinations", "/content-views", "/repositories", "/events", "/transfers", "/parked", "/audit"]
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def site(published_source, tmp_path):
    s = prepare(published_source, tmp_path)
    yield s
    s.app.close()


@pytest.fixture
def client(site: Site):
    with TestClient(create_app(site.app), base_url="http://testserver") as c:
        yield c


def as_user(client: TestClient, login: str) -> TestClient:
    r = log_in(client, login)
    assert r.status_code == 303, r.text
    return client


def test_pages_need_a_login_and_the_login_form_works(client, site):
    for page in PAGES:
        r = client.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), page
    bad = log_in(client, "ada", "wrong password")
    assert bad.status_code == 401 and "Wrong login or password" in bad.text
    rows = audit.list_audit(site.app.uow(), action="login.failed")
    assert rows and rows[0]["target"] == "ada"
    ok = log_in(client, "ada")
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"]
    assert "iss_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here
    for page in PAGES:
        r = client.get(page)
        assert r.status_code == 200, (page, r.text[:300])
        assert "Log out" in r.text
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_session_cookie_is_secure_over_https(site):
    with TestClient(create_app(site.app), base_url="https://testserver") as c:
        r = log_in(c, "ada")
        assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()


def test_open_redirects_are_refused(client):
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={
            "login": "ada",
            "password": "correct horse battery staple",
            "csrf_token": token,
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_overview_and_pages_show_what_the_server_holds(client, site):
    as_user(client, "vera")
    home = client.get("/").text
    assert "source" in home and site.app.server_id in home
    assert ">1<" in home.replace(" ", "")  # one parked message
    dest = client.get("/destinations").text
    assert "dc-east" in dest and "content view base" in dest and "repository evil/stuff" in dest
    assert 'class="bar"' in dest
    cvs = client.get("/content-views").text
    assert "1.0" in cvs and "blessed" in cvs
    repos = client.get("/repositories").text
    assert "utils" in repos and "baseos" in repos
    transfers = client.get("/transfers").text
    assert f'href="/api/v1/bundles/{site.bundle_id}/download"' in transfers
    assert "export" in transfers and "full" in transfers and "KiB" in transfers and ">done<" in transfers
    events = client.get("/events").text
    assert "iss.content_view.published.v1" in events
    only = client.get("/events", params={"type": "nothing.like.this"}).text
    assert "iss.content_view.published.v1</td>" not in only


def test_xss_payloads_render_escaped(client, site):
    as_user(client, "ada")
    for page in ("/repositories", "/destinations", "/parked"):
        html = client.get(page).text
        assert XSS not in html, page
        assert ESCAPED in html, page


def test_organization_scope(client, site):
    as_user(client, "otto")  # view_dashboard in ACME only
    dest = client.get("/destinations").text
    assert "content view base" in dest and "evil/stuff" not in dest
    assert "evil" not in client.get("/repositories").text
    assert client.get("/repositories", params={"organization": "BETA"}).status_code == 403
    assert "BETA" not in client.get("/audit").text
    park_one(site.app, "BETA")
    parked = client.get("/parked").text
    assert parked.count("<pre>") == 1  # ACME's, not BETA's


def test_every_page_checks_its_permission(client, site):
    as_user(client, "nobody")  # view_products only: no dashboard
    for page in PAGES:
        r = client.get(page)
        assert r.status_code == 403, page
        assert "view_dashboard" in r.text
    denied = audit.list_audit(site.app.uow(), action="permission.denied")
    assert any(row["actor"] == "nobody" for row in denied)


def test_viewer_sees_parked_but_cannot_replay(client, site):
    as_user(client, "vera")
    page = client.get("/parked").text
    assert "rule_violation" in page and "Replay</button>" not in page
    token = csrf_of(page)
    r = client.post(f"/parked/{site.parked_id}/replay", data={"csrf_token": token})
    assert r.status_code == 403 and "manage_destinations" in r.text
    assert [m.event_id for m in parking.list_parked(site.app)] == [site.parked_id]


def test_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(client, site):
    as_user(client, "ada")
    before = len(audit.list_audit(site.app.uow()))
    for data in ({}, {"csrf_token": "wrong"}):
        r = client.post(f"/parked/{site.parked_id}/discard", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert [m.event_id for m in parking.list_parked(site.app)] == [site.parked_id]
    assert len(audit.list_audit(site.app.uow())) == before
    assert client.post("/login", data={"login": "ada", "password": "x"}).status_code == 403  # login form too


def test_replay_and_discard_on_memory(client, site):
    as_user(client, "ada")
    token = csrf_of(client.get("/parked").text)
    r = client.post(f"/parked/{site.parked_id}/replay", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert parking.list_parked(site.app) == []
    rows = audit.list_audit(site.app.uow(), action="parked.replay")
    assert rows[0]["actor"] == "ada" and rows[0]["target"] == site.parked_id
    other = park_one(site.app, "ACME")
    r = client.post(f"/parked/{other}/discard", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and parking.list_parked(site.app) == []
    assert audit.list_audit(site.app.uow(), action="parked.discard")[0]["target"] == other
    gone = client.post(f"/parked/{other}/discard", data={"csrf_token": token})
    assert gone.status_code == 404 and "no parked message" in gone.text


def test_metrics_parse_and_need_a_token(client, site):
    assert client.get("/metrics").status_code == 401
    token = site.server.json("token", "create", "--name", "prometheus")["token"]
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["iss_outbox_backlog"].samples[0].value >= 1
    assert families["iss_parked_messages"].samples[0].value == 1
    lag = {s.labels["destination"]: s.value for s in families["iss_destination_lag_versions"].samples}
    assert lag == {"dc-east": 1}
    durations = {s.name: s.value for s in families["iss_transfer_duration_seconds"].samples}
    assert durations["iss_transfer_duration_seconds_count"] == 1 and durations["iss_transfer_duration_seconds_sum"] > 0
    sizes = {(s.labels["direction"], s.labels["kind"]): s.value for s in families["iss_transfer_bytes"].samples}
    assert sizes[("export", "full")] > 1000
    bundles = {(s.labels["direction"], s.labels["kind"]): s.value for s in families["iss_transfer_bundles"].samples}
    assert bundles == {("export", "full"): 1}
    states = {(s.labels["direction"], s.labels["state"]): s.value for s in families["iss_transfers"].samples}
    assert states == {("export", "done"): 1}
    # pending goes down when the relay sends: iss_outbox_backlog (a gauge) says it, the counter does not
    assert not [s for s in families["iss_events"].samples if s.labels["outcome"] == "pending"]
    assert families["iss_unroutable_messages"].samples[0].value == 0  # memory:// has no unroutable queue


def test_metrics_types_a_value_that_can_go_down_is_a_gauge(client, site):
    token = site.server.json("token", "create", "--name", "prometheus")["token"]
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types == {
        "iss_outbox_backlog": "gauge",
        "iss_events_total": "counter",
        "iss_parked_messages": "gauge",
        "iss_bus_up": "gauge",
        "iss_unroutable_messages": "gauge",
        "iss_transfer_duration_seconds": "summary",
        "iss_transfer_bytes": "gauge",
        "iss_transfer_bundles": "gauge",
        "iss_transfers": "gauge",
        "iss_destination_lag_versions": "gauge",
        "iss_destination_lag_seconds": "gauge",
    }


def test_the_overview_shows_no_unroutable_count_on_memory(client):
    as_user(client, "vera")
    page = client.get("/")
    assert page.status_code == 200 and "parked messages" in page.text
    assert "unroutable" not in page.text


def test_bearer_token_posts_need_no_csrf_token(site):
    token = site.server.json("token", "create", "--name", "automation")["token"]
    with TestClient(create_app(site.app)) as c:  # no session cookie: an API client
        r = c.post(
            f"/parked/{site.parked_id}/discard", headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
        )
        assert r.status_code == 303
    assert parking.list_parked(site.app) == []


def test_the_destinations_page_shows_whether_a_destination_is_online_and_its_url(client, site):
    as_user(client, "vera")
    assert "bundle files" in client.get("/destinations").text
    url = "https://dc-east.example.com:8443"
    site.server.run("destination", "update", "--name", "dc-east", "--online", "--url", url)
    dest = client.get("/destinations").text
    assert "<td>online<div" in dest and url in dest and "bundle files" not in dest
