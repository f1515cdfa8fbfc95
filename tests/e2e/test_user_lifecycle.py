"""Disabling, enabling and deleting users and changing a role's permissions, end to end: the real
CLI, the real FastAPI app (TestClient: dashboard session cookies and Bearer tokens) over a real
database (SQLite, and PostgreSQL where the storage matters)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from iss_plugin.adapters.db.identity_models import User
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy as P
from iss_plugin.domain.errors import NotAuthenticated, UsageError
from iss_plugin.services import audit, identity
from iss_plugin.settings import load_settings
from iss_plugin.web.app import create_app

from .servers import Server
from .test_identity import PASSWORD, act, add_user
from .web_setup import csrf_of, log_in


@pytest.fixture
def server(tmp_path, database_url):
    """An initialised server (admin, the two worker accounts, organization ACME) on SQLite and PostgreSQL."""
    s = Server("source", tmp_path / "source", database_url)
    s.write_config()
    s.run("init")
    s.run("organization", "create", "--name", "ACME Corp", "--label", "ACME")
    return s


@pytest.fixture
def app(server):
    a = App(load_settings(server.config))
    yield a
    a.close()


@pytest.fixture
def web(app):
    with TestClient(create_app(app), base_url="http://testserver") as c:
        yield c


def token_of(server: Server, login: str, name: str = "t") -> str:
    return str(server.json("token", "create", "--user", login, "--name", name)["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def users(server: Server) -> dict[str, dict]:
    return {u["login"]: u for u in server.json("user", "list")}


def snapshot(server: Server) -> tuple:
    """What a refused change must leave as it was: users, grants, roles, tokens (read as no one)."""
    app = App(load_settings(server.config))
    try:
        tokens = [(t["user"], t["name"], t["revoked_at"]) for t in identity.list_tokens(app.uow(), None)]
        return identity.list_users(app.uow()), identity.list_roles(app.uow()), tokens
    finally:
        app.close()


# --- 1. disable / enable ---------------------------------------------------------------------------


def test_a_disabled_users_token_and_dashboard_session_stop_working_at_once(server, app, web):
    add_user(server, "vic", [(frozenset({P.VIEW_DASHBOARD}), None)])
    token = token_of(server, "vic")
    assert log_in(web, "vic").status_code == 303
    assert web.get("/audit").status_code == 200  # the session works
    assert web.get("/metrics", headers=bearer(token)).status_code == 200  # the token works
    act(server, None, "audit", "list", token=token)

    done = server.json("user", "update", "--login", "vic", "--disable")
    assert done == {"login": "vic", "disabled": True, "changed": True}

    page = web.get("/audit", follow_redirects=False)  # the cookie issued before the disable
    assert page.status_code == 303 and page.headers["location"].startswith("/login"), page.text
    assert "iss_session=" in page.headers.get("set-cookie", "")  # the dead session is cleared
    api = web.get("/metrics", headers=bearer(token))
    assert api.status_code == 401 and "user 'vic' is disabled" in api.json()["message"]
    r = act(server, None, "audit", "list", token=token, expect=4)
    assert "disabled" in r.output
    assert log_in(web, "vic").status_code == 401  # nor can it log in again
    assert users(server)["vic"]["disabled"] is True

    server.run("user", "update", "--login", "vic", "--enable")
    assert web.get("/metrics", headers=bearer(token)).status_code == 200  # grants and tokens were kept
    assert log_in(web, "vic").status_code == 303 and web.get("/audit").status_code == 200
    rows = audit.list_audit(app.uow(), action="user.")
    assert [(r["action"], r["actor"], r["target"]) for r in rows[:2]] == [
        ("user.enable", "admin", "vic"),
        ("user.disable", "admin", "vic"),
    ]
    refused = audit.list_audit(app.uow(), action="login.failed")
    assert any(r["details"].get("method") == "session" and r["actor"] == "vic" for r in refused)


def test_update_needs_disable_or_enable_and_an_existing_user(server):
    before = snapshot(server)
    r = server.run("user", "update", "--login", "admin", expect=2)
    assert "give --disable or --enable" in r.output
    r = server.run("user", "update", "--login", "nobody", "--disable", expect=2)
    assert "no user 'nobody'" in r.output and "iss user list" in r.output
    r = server.run("user", "update", "--login", "admin", "--disable", expect=2)
    assert "you cannot disable yourself ('admin')" in r.output and "another administrator" in r.output
    assert snapshot(server) == before


# --- 1b. sessions end for good: disable, password change ----------------------------------------

NEW_PASSWORD = "a brand new passphrase"


def present(web: TestClient, cookie: str | None):
    """A request of a browser that holds only `cookie` (copied, or kept from before)."""
    web.cookies.clear()
    web.cookies.set("iss_session", cookie or "")
    return web.get("/audit", follow_redirects=False)


def signed_in(web: TestClient) -> bool:
    """The dashboard answers the page itself (not a redirect to the login page)."""
    return web.get("/audit", follow_redirects=False).status_code == 200


def ended(page) -> bool:
    """Refused like an expired session: sent to the login page, the cookie cleared."""
    cleared = "iss_session=" in page.headers.get("set-cookie", "")
    return page.status_code == 303 and page.headers["location"].startswith("/login") and cleared


def session_refusals(app: App, login: str) -> list[str]:
    rows = audit.list_audit(app.uow(), action="login.failed")
    return [r["details"]["problem"] for r in rows if r["actor"] == login and r["details"].get("method") == "session"]


def password_hash(app: App, login: str) -> str | None:
    with app.session_factory() as s:
        return s.scalar(select(User.password_hash).where(User.login == login))


def test_a_session_from_before_a_disable_stays_refused_after_the_enable(server, app, web):
    add_user(server, "vic", [(frozenset({P.VIEW_DASHBOARD}), None)])
    token = token_of(server, "vic")
    assert log_in(web, "vic").status_code == 303 and signed_in(web)
    copied = web.cookies.get("iss_session")  # someone copies the cookie; the browser is not used meanwhile

    server.run("user", "update", "--login", "vic", "--disable")
    done = server.json("user", "update", "--login", "vic", "--enable")
    assert done == {"login": "vic", "disabled": False, "changed": True}
    before = snapshot(server)

    assert ended(present(web, copied))
    assert session_refusals(app, "vic") == ["user 'vic' was disabled or its password changed since this session began"]
    assert ended(present(web, copied))  # for good, not once
    assert snapshot(server) == before  # the refusal changed nothing: the user, its grants and tokens
    assert users(server)["vic"]["disabled"] is False
    # decided: an API token survives a disable (as Foreman's personal access tokens): enabling restores it
    assert web.get("/metrics", headers=bearer(token)).status_code == 200

    web.cookies.clear()
    assert log_in(web, "vic").status_code == 303  # a fresh login gets a session that works
    assert signed_in(web) and signed_in(web)
    assert web.cookies.get("iss_session") != copied


def test_a_session_cookie_from_before_migration_0012_is_refused(server, app, web):
    """Its stamp has no generation: the user logs in once more after the upgrade."""
    add_user(server, "vic", [(frozenset({P.VIEW_DASHBOARD}), None)])
    stamp = identity.session_stamp(app.uow(), "vic")
    assert stamp.endswith("/0")
    with pytest.raises(NotAuthenticated, match="was disabled or its password changed since this session began"):
        identity.authenticate_session(app.uow(), "vic", stamp.rsplit("/", 1)[0])
    assert identity.authenticate_session(app.uow(), "vic", stamp).login == "vic"


def test_a_session_from_before_a_password_change_is_refused_after_it(server, app, web, monkeypatch):
    add_user(server, "pat", [(frozenset({P.VIEW_DASHBOARD}), None)])
    token = token_of(server, "pat")
    assert log_in(web, "pat").status_code == 303 and signed_in(web)
    kept = web.cookies.get("iss_session")
    old_hash = password_hash(app, "pat")

    monkeypatch.setenv("ISS_NEW_PASSWORD", NEW_PASSWORD)
    done = server.json("user", "update", "--login", "pat", "--password")
    assert done == {"login": "pat", "password_changed": True}
    assert password_hash(app, "pat") != old_hash
    before = snapshot(server)

    assert ended(present(web, kept))
    assert session_refusals(app, "pat") == ["user 'pat' was disabled or its password changed since this session began"]
    assert snapshot(server) == before and password_hash(app, "pat") not in (None, old_hash)
    assert web.get("/metrics", headers=bearer(token)).status_code == 200  # tokens survive a password change
    web.cookies.clear()
    assert log_in(web, "pat").status_code == 401  # the old password is gone
    assert log_in(web, "pat", NEW_PASSWORD).status_code == 303 and signed_in(web)
    [changed] = audit.list_audit(app.uow(), action="user.password")
    assert (changed["actor"], changed["target"], changed["details"]) == ("admin", "pat", {})  # never the password


def test_refused_password_changes_change_nothing_and_end_no_session(server, app, web, monkeypatch):
    add_user(server, "pat", [(frozenset({P.VIEW_DASHBOARD}), None)])
    assert log_in(web, "pat").status_code == 303
    hashes = {login: password_hash(app, login) for login in ("admin", "pat", "iss-export")}
    before = snapshot(server)
    monkeypatch.setenv("ISS_NEW_PASSWORD", NEW_PASSWORD)

    r = server.run("user", "update", "--login", "iss-export", "--password", expect=2)
    assert "'iss-export' is a service account" in r.output and "nothing was changed" in r.output
    assert "iss token create --user iss-export" in r.output
    r = server.run("user", "update", "--login", "nobody", "--password", expect=2)
    assert "no user 'nobody'" in r.output
    r = server.run("user", "update", "--login", "pat", expect=2)
    assert "give --disable or --enable, and/or --password" in r.output
    r = server.run("user", "update", "--login", "admin", "--password", "--disable", expect=2)
    assert "you cannot disable yourself" in r.output
    with pytest.raises(UsageError, match="without an enabled administrator; nothing was changed"):
        identity.update_user(app.uow(), "admin", "iss-init", password=NEW_PASSWORD, disabled=True)
    with pytest.raises(UsageError, match="the new password of 'pat' is empty"):
        identity.update_user(app.uow(), "pat", "admin", password="")

    assert snapshot(server) == before
    assert {login: password_hash(app, login) for login in hashes} == hashes  # no half-done change
    assert signed_in(web)  # pat's session goes on
    assert audit.list_audit(app.uow(), action="user.password") == []


def test_the_api_changes_a_password_and_keeps_only_the_callers_own_session(server, app, web):
    add_user(server, "boss", [(frozenset({P.ADMIN}), None)])
    admin = bearer(token_of(server, "admin", "api"))
    with TestClient(create_app(app), base_url="http://testserver") as other:
        assert log_in(web, "boss").status_code == 303 and log_in(other, "boss").status_code == 303
        csrf = csrf_of(web.get("/login").text)
        before = snapshot(server)
        for bad in ({"password": ""}, {"password": 7}, {"secret": "x"}):
            assert web.patch("/api/v1/users/boss", json=bad, headers={"x-csrf-token": csrf}).status_code == 422
        r = web.patch("/api/v1/users/boss", json={}, headers={"x-csrf-token": csrf})
        assert r.status_code == 400 and "nothing to update" in r.json()["message"]
        assert snapshot(server) == before and signed_in(other)

        r = web.patch("/api/v1/users/boss", json={"password": NEW_PASSWORD}, headers={"x-csrf-token": csrf})
        assert r.status_code == 200 and r.json()["login"] == "boss"
        assert signed_in(web)  # the session that changed its own password stays
        assert ended(other.get("/audit", follow_redirects=False))  # boss's other browser is logged out

        r = web.patch("/api/v1/users/boss", json={"password": PASSWORD}, headers=admin)  # someone else sets it
        assert r.status_code == 200
        assert ended(web.get("/audit", follow_redirects=False))
        assert log_in(web, "boss").status_code == 303 and signed_in(web)
    changes = [(r["actor"], r["target"]) for r in audit.list_audit(app.uow(), action="user.password")]
    assert changes == [("admin", "boss"), ("boss", "boss")]


# --- 2. delete -------------------------------------------------------------------------------------


def test_delete_removes_grants_and_tokens_and_keeps_the_audit_history(server, app, web):
    add_user(server, "dora", [(P.BUILTIN_ROLES[P.VIEWER], "ACME")])
    token = token_of(server, "dora")
    act(server, "dora", "product", "list", "--organization", "ACME")
    act(server, "dora", "product", "create", "--organization", "ACME", "--name", "x", expect=4)  # audited denial
    assert log_in(web, "dora").status_code == 303

    gone = server.json("user", "delete", "--login", "dora")
    assert gone == {"login": "dora", "deleted": True, "roles_removed": ["dora-0@ACME"], "tokens_deleted": ["t"]}

    assert "dora" not in users(server)
    assert identity.list_tokens(app.uow(), "dora") == []
    assert act(server, None, "audit", "list", token=token, expect=4).exit_code == 4
    assert web.get("/metrics", headers=bearer(token)).status_code == 401
    assert web.get("/audit", follow_redirects=False).status_code == 303  # the session died with the user
    history = audit.list_audit(app.uow())
    assert any(r["actor"] == "dora" and r["action"] == "permission.denied" for r in history)  # still readable
    [deleted] = [r for r in history if r["action"] == "user.delete"]
    assert deleted["actor"] == "admin" and deleted["target"] == "dora"
    assert deleted["details"]["roles"] == ["dora-0@ACME"] and deleted["details"]["tokens"] == ["t"]
    server.run("user", "delete", "--login", "dora", expect=2)  # gone: a clear not-found


def test_a_session_of_a_deleted_user_never_logs_in_a_new_user_of_the_same_login(server, web):
    add_user(server, "sam", [(frozenset({P.VIEW_DASHBOARD}), None)])
    assert log_in(web, "sam").status_code == 303 and web.get("/audit").status_code == 200
    old_cookie = web.cookies.get("iss_session")
    server.run("user", "delete", "--login", "sam")
    app = App(load_settings(server.config))
    try:  # someone else, same login and grants (SQLite may even give it the same id)
        identity.create_user(app.uow(), "sam", PASSWORD, "test")
        identity.grant_role(app.uow(), "sam", "sam-0", None, "test")
    finally:
        app.close()
    web.cookies.clear()
    web.cookies.set("iss_session", old_cookie)
    r = web.get("/audit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_deleting_yourself_the_last_administrator_or_a_worker_account_is_refused(server, app):
    before = snapshot(server)
    r = server.run("user", "delete", "--login", "admin", expect=2)
    assert "you cannot delete yourself ('admin'); nothing was changed" in r.output
    for account, setting in (("iss-import", "import_account"), ("iss-export", "export_account")):
        r = server.run("user", "delete", "--login", account, expect=2)
        assert f"service account a worker acts as (setting {setting})" in r.output, r.output
        assert f"iss user update --login {account} --disable" in r.output
    server.run("user", "delete", "--login", "nobody", expect=2)
    # any other actor (a script through the service, or another admin who is then disabled): the
    # last enabled administrator stays
    with pytest.raises(UsageError, match="without an enabled administrator; nothing was changed"):
        identity.delete_user(app.uow(), "admin", "iss-init", {})
    with pytest.raises(UsageError, match="without an enabled administrator"):
        identity.set_user_disabled(app.uow(), "admin", True, "iss-init")
    assert snapshot(server) == before
    assert [r for r in audit.list_audit(app.uow()) if r["action"] in ("user.delete", "user.disable")] == []
    # another service account is an ordinary user
    server.run("user", "create", "--login", "ci", "--service-account")
    server.run("user", "delete", "--login", "ci")


def test_an_administrator_by_role_is_counted_and_kept(server):
    """boss is an administrator through a role of its own: it may disable admin, but not then
    strip 'admin' from its role (the last enabled administrator) nor disable itself."""
    add_user(server, "boss", [(frozenset({P.ADMIN, P.VIEW_PRODUCTS}), None)])
    act(server, "boss", "user", "update", "--login", "admin", "--disable")
    before = snapshot(server)
    r = act(server, "boss", "role", "update", "--name", "boss-0", "--remove-permission", "admin", expect=2)
    assert "removing 'admin' from role 'boss-0' would leave this server without an enabled administrator" in r.output
    assert "iss user create --login NAME --admin" in r.output
    act(server, "boss", "user", "update", "--login", "boss", "--disable", expect=2)
    r = act(
        server, "boss", "user", "revoke-role", "--user", "boss", "--role", "boss-0", "--all-organizations", expect=2
    )
    assert "revoking role 'boss-0' from 'boss' would leave this server without an enabled administrator" in r.output
    assert snapshot(server) == before
    act(server, "boss", "user", "update", "--login", "admin", "--enable")
    act(server, "boss", "role", "update", "--name", "boss-0", "--remove-permission", "admin")  # admin is back
    act(server, "boss", "user", "list", expect=4)  # and boss holds it no more


# --- 3. role update --------------------------------------------------------------------------------


def test_a_removed_permission_denies_the_next_request_of_every_holder(server, web):
    server.run("role", "create", "--name", "Auditor", "--permission", "view_dashboard", "--permission", "view_products")
    for login in ("ann", "ben"):
        add_user(server, login, [])
        server.run("user", "grant", "--user", login, "--role", "Auditor", "--all-organizations")
    token = token_of(server, "ben")
    assert log_in(web, "ann").status_code == 303 and web.get("/audit").status_code == 200
    assert web.get("/metrics", headers=bearer(token)).status_code == 200

    changed = server.json("role", "update", "--name", "Auditor", "--remove-permission", "view_dashboard")
    assert changed["permissions"] == ["view_products"] and changed["removed"] == ["view_dashboard"]

    assert web.get("/audit").status_code == 403  # ann's session, next request
    assert web.get("/metrics", headers=bearer(token)).status_code == 403  # ben's token, next request
    act(server, "ann", "audit", "list", expect=4)
    act(server, "ann", "product", "list", "--organization", "ACME")  # what stays, stays

    server.run("role", "update", "--name", "Auditor", "--add-permission", "view_dashboard")
    assert web.get("/audit").status_code == 200
    rows = server.json("audit", "list", "--action", "role.update")
    assert [(r["target"], r["details"]) for r in rows] == [
        ("Auditor", {"added": ["view_dashboard"], "removed": []}),
        ("Auditor", {"added": [], "removed": ["view_dashboard"]}),
    ]


def test_bad_role_updates_exit_2_and_change_nothing(server):
    server.run("role", "create", "--name", "Mine", "--permission", "view_products")
    before = snapshot(server)
    r = server.run(
        "role",
        "update",
        "--name",
        "Mine",
        "--add-permission",
        "export",
        "--remove-permission",
        "view_product",
        expect=2,
    )
    assert "role 'Mine' was not changed" in r.output
    assert "'export' is not a permission" in r.output and "'view_product' is not a permission" in r.output
    r = server.run("role", "update", "--name", "Mine", expect=2)
    assert "give --add-permission and/or --remove-permission" in r.output
    r = server.run(
        "role", "update", "--name", "Mine", "--add-permission", "admin", "--remove-permission", "admin", expect=2
    )
    assert "'admin' is both added and removed" in r.output
    r = server.run("role", "update", "--name", "Viewer", "--remove-permission", "view_dashboard", expect=2)
    assert "role 'Viewer' is built in and cannot change" in r.output and "iss role create" in r.output
    server.run("role", "update", "--name", "Nope", "--add-permission", "admin", expect=2)
    assert snapshot(server) == before
    assert server.json("audit", "list", "--action", "role.update") == []


# --- the JSON API ----------------------------------------------------------------------------------


def test_the_api_disables_deletes_and_edits_roles_for_administrators_only(server, app, web):
    admin = bearer(token_of(server, "admin", "api"))
    add_user(server, "una", [(frozenset({P.VIEW_DASHBOARD}), None)])
    una = bearer(token_of(server, "una"))
    assert web.patch("/api/v1/users/una", json={"disabled": True}, headers=una).status_code == 403
    assert web.get("/api/v1/users", headers=una).status_code == 403

    r = web.patch("/api/v1/users/una", json={"disabled": True}, headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert web.get("/metrics", headers=una).status_code == 401
    r = web.patch("/api/v1/users/una", json={"disabled": False}, headers=admin)
    assert r.status_code == 200 and web.get("/metrics", headers=una).status_code == 200

    before = snapshot(server)
    r = web.patch("/api/v1/users/admin", json={"disabled": True}, headers=admin)
    assert r.status_code == 400 and "you cannot disable yourself" in r.json()["message"]
    assert web.patch("/api/v1/users/una", json={"disabled": "maybe"}, headers=admin).status_code == 422
    assert web.patch("/api/v1/users/nobody", json={"disabled": True}, headers=admin).status_code == 404
    assert web.delete("/api/v1/users/iss-export", headers=admin).status_code == 400
    r = web.patch("/api/v1/roles/Viewer", json={"add_permissions": ["admin"]}, headers=admin)
    assert r.status_code == 400 and "built in" in r.json()["message"]
    r = web.patch("/api/v1/roles/una-0", json={"add_permissions": ["root"]}, headers=admin)
    assert r.status_code == 400 and "'root' is not a permission" in r.json()["problems"][0]
    assert snapshot(server) == before

    r = web.patch("/api/v1/roles/una-0", json={"remove_permissions": ["view_dashboard"]}, headers=admin)
    assert r.status_code == 200 and r.json() == {"name": "una-0", "builtin": False, "permissions": []}
    assert web.get("/metrics", headers=una).status_code == 403
    r = web.delete("/api/v1/users/una", headers=admin)
    assert r.status_code == 200 and r.json()["tokens_deleted"] == ["t"]
    assert web.get("/metrics", headers=una).status_code == 401
    assert "una" not in {u["login"] for u in web.get("/api/v1/users", headers=admin).json()}
    actions = {(r["action"], r["target"]) for r in audit.list_audit(app.uow(), action="user.")}
    assert {("user.disable", "una"), ("user.enable", "una"), ("user.delete", "una")} <= actions
