"""Login throttling through the real app (TestClient over create_app, a real SQLite database and
argon2 hashes): after N failures for a login, or M from one address, within the window, the form
answers 429 with Retry-After and does not check the password; a success resets the login."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from consumers.demo import make_server
from iss_plugin.services import audit, identity
from iss_plugin.web.app import create_app

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(tmp_path):
    made = make_server(
        tmp_path,
        "web",
        web_login_max_failures=3,
        web_login_max_failures_per_address=5,
        web_login_window_seconds=600,
    )
    for login in ("alice", "bob", "carol", "dave"):
        identity.create_user(made.uow(), login, PASSWORD, "test")
    yield made
    made.close()


@pytest.fixture
def web(app):
    """One application (one process's counters), reached from several client addresses."""
    return create_app(app)


def browser(web, address: str = "10.0.0.1") -> TestClient:
    return TestClient(web, client=(address, 40000))


def attempt(client: TestClient, login: str, password: str):
    token = CSRF.search(client.get("/login").text)
    assert token, "no CSRF field on the login page"
    return client.post(
        "/login",
        data={"login": login, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )


def failures(app, login: str) -> int:
    """login.failed rows: one per password actually checked and found wrong."""
    return sum(1 for row in audit.list_audit(app.uow(), action="login.failed") if row["target"] == login)


def test_the_login_after_n_failures_is_refused_with_429_without_checking_the_password(app, web):
    with browser(web) as client:
        for _ in range(3):
            assert attempt(client, "alice", "wrong").status_code == 401
        assert failures(app, "alice") == 3
        refused = attempt(client, "alice", "still wrong")
        assert refused.status_code == 429
        retry = int(refused.headers["Retry-After"])
        assert 590 <= retry <= 600
        assert "Too many failed logins for the login &#39;alice&#39; (3 within 10 min)" in refused.text
        assert "without checking the password" in refused.text and "Try again in" in refused.text
        # the correct password is refused too: the password is not looked at while throttled
        right = attempt(client, "alice", PASSWORD)
        assert right.status_code == 429 and "iss_session=" not in right.headers.get("set-cookie", "")
        assert failures(app, "alice") == 3  # no further password check happened (each one audits)
        throttled = audit.list_audit(app.uow(), action="login.throttled")
        assert len(throttled) == 1  # the lock-out is audited once, not every refused attempt
        assert throttled[0]["target"] == "alice" and throttled[0]["outcome"] == "denied"
        assert throttled[0]["details"]["scope"] == "login" and throttled[0]["details"]["address"] == "10.0.0.1"
        # another login from elsewhere is not affected by alice's failures
    with browser(web, "10.0.0.2") as other:
        assert attempt(other, "bob", PASSWORD).status_code == 303
        assert attempt(other, "alice", PASSWORD).status_code == 429  # alice is throttled from every address


def test_a_success_resets_the_login_counter(web):
    with browser(web) as client:
        for _ in range(2):
            assert attempt(client, "carol", "wrong").status_code == 401
        assert attempt(client, "carol", PASSWORD).status_code == 303
        for _ in range(2):  # the count starts again: two more failures are not three
            assert attempt(client, "carol", "wrong").status_code == 401
        assert attempt(client, "carol", PASSWORD).status_code == 303
    with browser(web, "10.0.0.3") as client:  # (10.0.0.1 is near its own address limit now)
        for _ in range(3):  # three in a row after the reset still lock the login
            assert attempt(client, "carol", "wrong").status_code == 401
        assert attempt(client, "carol", PASSWORD).status_code == 429


def test_one_address_is_throttled_across_logins_and_others_are_not(app, web):
    with browser(web, "192.0.2.7") as spray:
        for login in ("alice", "bob", "carol", "dave", "nobody"):  # one failure each: 5 from this address
            assert attempt(spray, login, "guess").status_code == 401
        refused = attempt(spray, "dave", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "from your address 192.0.2.7" in refused.text
    with browser(web, "192.0.2.8") as elsewhere:
        assert attempt(elsewhere, "dave", PASSWORD).status_code == 303
    rows = audit.list_audit(app.uow(), action="login.throttled")
    assert [(r["target"], r["details"]["scope"]) for r in rows] == [("192.0.2.7", "address")]
    assert {r["details"]["address"] for r in audit.list_audit(app.uow(), action="login.failed")} == {"192.0.2.7"}


def test_limits_of_zero_turn_throttling_off(tmp_path):
    made = make_server(tmp_path, "off", web_login_max_failures=0, web_login_max_failures_per_address=0)
    identity.create_user(made.uow(), "erin", PASSWORD, "test")
    try:
        with browser(create_app(made)) as client:
            for _ in range(8):
                assert attempt(client, "erin", "wrong").status_code == 401
            assert attempt(client, "erin", PASSWORD).status_code == 303
    finally:
        made.close()
