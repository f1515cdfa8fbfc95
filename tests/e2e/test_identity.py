"""Who may do what, through the real CLI: users, roles, grants, tokens, organization scope, the
audit log, and the trust's organization mapping (issue 8, points 1-4)."""

from __future__ import annotations

import hashlib
import json
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iss_plugin.adapters.db.identity_models import ApiToken
from iss_plugin.bootstrap import App
from iss_plugin.cli.main import build_cli
from iss_plugin.domain import policy as P
from iss_plugin.services import identity
from iss_plugin.settings import load_settings

from .conftest import CUSTOM, RH, RH_ID, make_destination
from .servers import Server

PASSWORD = "correct horse battery staple"


def act(server: Server, who: str | None, *args: str, expect: int | None = 0, token: str | None = None):
    """Run `iss` as `who` (password through ISS_PASSWORD) or with ISS_TOKEN=token."""
    env = {"ISS_PASSWORD": PASSWORD, "ISS_TOKEN": token}
    login = ["--user", who] if who else []
    result = CliRunner().invoke(
        build_cli(), ["--config", str(server.config), *login, *args], env=env, catch_exceptions=False
    )
    if expect is not None:
        assert result.exit_code == expect, f"iss {' '.join(args)} as {who} -> {result.exit_code}\n{result.output}"
    return result


def add_user(server: Server, login: str, grants: list[tuple[frozenset[str], str | None]]) -> None:
    """A user holding exactly these permission sets (each as its own role) in these organizations."""
    app = App(load_settings(server.config))
    try:
        identity.create_user(app.uow(), login, PASSWORD, "test")
        for i, (perms, org) in enumerate(grants):
            role = f"{login}-{i}"
            identity.create_role(app.uow(), role, tuple(sorted(perms)), "test")
            identity.grant_role(app.uow(), login, role, org, "test")
    finally:
        app.close()


def audit_rows(server: Server, *args: str) -> list[dict]:
    return server.json("audit", "list", *args)


# --- 1. every permission, both ways ---------------------------------------------------------------


def _commands(tmp_path: Path, key: Path, bundle: Path) -> list[tuple[str, str, tuple[str, ...], int]]:
    """(permission, scope, args, exit code when allowed). scope: the grant the positive case gets."""
    acme = ("--organization", "ACME")
    n = iter(range(1000))
    return [
        ("edit_products", "all", ("organization", "create", "--name", f"Org {next(n)}"), 0),
        ("edit_products", "ACME", ("product", "create", *acme, "--name", f"p{next(n)}"), 0),
        ("edit_products", "ACME", ("repository", "create", *acme, "--product", CUSTOM, "--name", f"r{next(n)}"), 0),
        ("view_products", "ACME", ("product", "list", *acme), 0),
        ("view_products", "ACME", ("repository", "list", *acme), 0),
        ("view_products", "ACME", ("repository", "info", *acme, "--repository", f"{CUSTOM}/utils"), 0),
        ("view_products", "ACME", ("organization", "list"), 0),
        ("publish_content_views", "ACME", ("content-view", "create", *acme, "--name", f"V{next(n)}"), 0),
        ("publish_content_views", "ACME", ("content-view", "publish", *acme, "--content-view", "base"), 0),
        ("publish_content_views", "ACME", ("content-view", "bless", *acme, "--content-view", "base"), 0),
        ("view_content_views", "ACME", ("content-view", "list", *acme), 0),
        ("view_content_views", "ACME", ("content-view", "version", "list", *acme, "--content-view", "base"), 0),
        ("export_content", "ACME", ("content-export", "complete", "version", *acme, "--content-view", "base"), 0),
        # the permission passes; the source does not trust its own key: refused as untrusted (3), not 4
        ("import_content", "ACME", ("content-import", "version", *acme, "--path", str(bundle)), 3),
        (
            "manage_destinations",
            "all",
            ("destination", "add", "--name", f"d{next(n)}", "--server-id", f"d{next(n)}", "--public-key", str(key)),
            0,
        ),
        ("manage_destinations", "all", ("destination", "list"), 0),
        # the permission passes; there is no such destination: a usage error (2), not 4
        ("manage_destinations", "all", ("destination", "update", "--name", "nowhere", "--offline"), 2),
        ("manage_trust", "all", ("trust", "list"), 0),
        (
            "manage_trust",
            "all",
            ("trust", "add", "--name", "me", "--public-key", str(key), "--organization", "ACME"),
            0,
        ),
        ("view_dashboard", "ACME", ("audit", "list"), 0),
        ("admin", "all", ("user", "list"), 0),
        ("admin", "all", ("role", "list"), 0),
        ("admin", "all", ("store", "gc"), 0),
    ]


def test_every_command_checks_its_permission(tmp_path, published_source):
    s = published_source
    key = tmp_path / "self.pub"
    key.write_text(s.json("keys", "show")["public_key"])
    bundle = Path(
        s.json("content-export", "complete", "version", "--organization", "ACME", "--content-view", "base")["path"]
    )
    commands = _commands(tmp_path, key, bundle)
    assert {c[0] for c in commands} == set(P.PERMISSIONS)
    for i, (permission, scope, args, allowed_code) in enumerate(commands):
        org = None if scope == "all" else scope
        add_user(s, f"yes{i}", [(frozenset({permission}), org)])
        # every other permission, in every organization, but not this one (nor admin)
        add_user(s, f"no{i}", [(frozenset(p for p in P.PERMISSIONS if p not in (permission, "admin")), None)])
        act(s, f"yes{i}", *args, expect=allowed_code)
        denied = act(s, f"no{i}", *args, expect=4)
        assert f"permission '{permission}'" in denied.output and f"'no{i}'" in denied.output, denied.output
        assert "iss user grant" in denied.output
    denials = [r for r in audit_rows(s, "--action", "permission.denied") if r["outcome"] == "denied"]
    assert len(denials) == len(commands)


# --- 2. organization scope ------------------------------------------------------------------------


def test_a_user_of_one_organization_cannot_read_or_act_on_another(tmp_path, published_source):
    s = published_source
    s.run("organization", "create", "--name", "Lab", "--label", "LAB")
    s.run("product", "create", "--organization", "LAB", "--name", "lab tools", "--label", "labtools")
    add_user(s, "alice", [(P.BUILTIN_ROLES[P.VIEWER] | {"edit_products", "export_content"}, "LAB")])

    listed = json.loads(act(s, "alice", "--output", "json", "organization", "list").stdout)
    assert [o["label"] for o in listed] == ["LAB"]
    assert [
        p["label"]
        for p in json.loads(act(s, "alice", "--output", "json", "product", "list", "--organization", "LAB").stdout)
    ] == ["labtools"]
    for args in (
        ("product", "list", "--organization", "ACME"),
        ("repository", "info", "--organization", "ACME", "--repository", f"{RH}/baseos"),
        ("product", "create", "--organization", "ACME", "--name", "sneaky"),
        ("content-export", "complete", "version", "--organization", "ACME", "--content-view", "base"),
    ):
        r = act(s, "alice", *args, expect=4)
        assert "in organization 'ACME' is missing" in r.output, r.output
    assert "sneaky" not in [p["label"] for p in s.json("product", "list", "--organization", "ACME")]
    assert s.json("content-export", "complete", "version", "--organization", "ACME", "--content-view", "base")
    # server-wide actions need a grant in every organization
    r = act(s, "alice", "organization", "create", "--name", "Mine", expect=4)
    assert "every organization" in r.output
    # her audit view holds only LAB's rows
    act(s, "alice", "product", "create", "--organization", "LAB", "--name", "more")
    rows = json.loads(act(s, "alice", "--output", "json", "audit", "list").stdout)
    assert rows and {r["organization"] for r in rows} == {"LAB"}
    act(s, "alice", "audit", "list", "--organization", "ACME", expect=4)


# --- 3. authentication: passwords, tokens, the credentials file ------------------------------------


def test_init_makes_the_first_administrator_once(tmp_path):
    s = Server("fresh", tmp_path / "fresh")
    s.write_config()
    out = s.json("init")
    assert out["admin_login"] == "admin" and len(out["admin_password"]) >= 20
    creds = s.data / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and out["credentials"] == str(creds)
    assert out["admin_password"] not in creds.read_text()
    users = {u["login"]: u for u in s.json("user", "list")}
    assert users["admin"]["admin"] and users["iss-export"]["roles"] == ["Content Exporter@*"]
    assert users["iss-import"]["roles"] == ["Content Importer@*"] and users["iss-import"]["service_account"]
    env = {"ISS_PASSWORD": out["admin_password"]}
    r = CliRunner().invoke(build_cli(), ["--config", str(s.config), "--user", "admin", "user", "list"], env=env)
    assert r.exit_code == 0, r.output
    again = s.run("init", expect=2)
    assert "already has an administrator ('admin')" in again.output
    assert s.json("user", "list") == list(users.values())


def test_wrong_password_exits_4_and_is_audited(published_source):
    s = published_source
    add_user(s, "bob", [(P.BUILTIN_ROLES[P.VIEWER], None)])
    act(s, "bob", "organization", "list")
    env = {"ISS_PASSWORD": "wrong"}
    r = CliRunner().invoke(build_cli(), ["--config", str(s.config), "--user", "bob", "organization", "list"], env=env)
    assert r.exit_code == 4 and "login as 'bob' failed" in r.output, r.output
    r = CliRunner().invoke(
        build_cli(), ["--config", str(s.config), "--user", "nobody", "organization", "list"], env=env
    )
    assert r.exit_code == 4
    failed = audit_rows(s, "--action", "login.failed")
    assert [(f["actor"], f["outcome"]) for f in failed] == [("nobody", "denied"), ("bob", "denied")]


def test_the_password_is_prompted_without_ISS_PASSWORD(published_source):
    s = published_source
    add_user(s, "carol", [(P.BUILTIN_ROLES[P.VIEWER], None)])
    args = ["--config", str(s.config), "--user", "carol", "organization", "list"]
    r = CliRunner().invoke(build_cli(), args, input=PASSWORD + "\n", env={"ISS_PASSWORD": None})
    assert r.exit_code == 0 and "password for carol" in r.output and PASSWORD not in r.output, r.output


def test_a_revoked_token_stops_working_at_once(published_source):
    s = published_source
    add_user(s, "dave", [(P.BUILTIN_ROLES[P.VIEWER], None)])
    made = s.json("token", "create", "--user", "dave", "--name", "ci", "--expires-days", "30")
    token = made["token"]
    assert made["user"] == "dave" and len(token) >= 40
    assert token not in json.dumps(s.json("token", "list", "--user", "dave"))
    assert act(s, None, "organization", "list", token=token).exit_code == 0
    act(s, None, "product", "create", "--organization", "ACME", "--name", "x", token=token, expect=4)
    s.run("token", "revoke", "--user", "dave", "--name", "ci")
    r = act(s, None, "organization", "list", token=token, expect=4)
    assert "revoked" in r.output, r.output
    act(s, None, "organization", "list", token="made-up", expect=4)
    short = s.json("token", "create", "--user", "dave", "--name", "short", "--expires-days", "0.00005")["token"]
    act(s, None, "organization", "list", token=short)
    time.sleep(4.5)  # 0.00005 days: 4.3 s
    assert "expired" in act(s, None, "organization", "list", token=short, expect=4).output
    app = App(load_settings(s.config))
    try:
        with app.session_factory() as db:
            stored = {t.name: t.token_hash for t in db.scalars(select(ApiToken))}
    finally:
        app.close()
    assert stored["ci"] == hashlib.sha256(token.encode()).hexdigest() and token not in stored.values()
    actions = [(a["action"], a["actor"], a["outcome"]) for a in audit_rows(s)]
    assert ("token.create", "admin", "success") in actions and ("token.revoke", "admin", "success") in actions
    assert ("login.failed", "dave", "denied") in actions and ("login.failed", "(unknown token)", "denied") in actions


def test_users_manage_their_own_tokens_only(published_source):
    s = published_source
    add_user(s, "erin", [(P.BUILTIN_ROLES[P.VIEWER], None)])
    own = json.loads(act(s, "erin", "--output", "json", "token", "create", "--name", "mine").stdout)
    assert own["user"] == "erin"
    r = act(s, "erin", "token", "create", "--user", "admin", expect=4)
    assert "permission 'admin'" in r.output
    act(s, "erin", "token", "revoke", "--name", "mine")
    act(s, None, "organization", "list", token=own["token"], expect=4)


def test_bad_identity_input_changes_nothing(published_source):
    s = published_source
    before = s.json("role", "list")
    r = s.run("role", "create", "--name", "r", "--permission", "export", "--permission", "view_products", expect=2)
    assert "'export' is not a permission" in r.output
    assert s.json("role", "list") == before
    add_user(s, "fay", [])
    r = s.run("user", "grant", "--user", "fay", "--role", "Viewer", "--organization", "NOPE", expect=2)
    assert "NOPE" in r.output
    s.run("user", "grant", "--user", "fay", "--role", "Viewer", expect=2)
    s.run(
        "user", "grant", "--user", "fay", "--role", "Viewer", "--organization", "ACME", "--all-organizations", expect=2
    )
    s.run("user", "grant", "--user", "fay", "--role", "Nope", "--organization", "ACME", expect=2)
    r = s.run("role", "add-permission", "--name", "Viewer", "--permission", "admin", expect=2)
    assert "built in" in r.output
    assert {u["login"]: u["roles"] for u in s.json("user", "list")}["fay"] == []
    assert s.json("role", "list") == before


def test_grant_and_revoke_take_effect_and_are_audited(published_source):
    s = published_source
    create = ["--config", str(s.config), "--output", "json", "user", "create", "--login", "gus"]
    r = CliRunner().invoke(build_cli(), create, env={"ISS_NEW_PASSWORD": PASSWORD})
    assert r.exit_code == 0 and json.loads(r.stdout)["password"] is True, r.output
    assert CliRunner().invoke(build_cli(), create, env={"ISS_NEW_PASSWORD": PASSWORD}).exit_code == 2  # exists
    robot = s.json("user", "create", "--login", "robot", "--service-account")
    assert robot["service_account"] and robot["password"] is False
    act(s, "gus", "product", "list", "--organization", "ACME", expect=4)
    s.run("user", "grant", "--user", "gus", "--role", "Viewer", "--organization", "ACME")
    act(s, "gus", "product", "list", "--organization", "ACME")
    s.run("user", "revoke-role", "--user", "gus", "--role", "Viewer", "--organization", "ACME")
    act(s, "gus", "product", "list", "--organization", "ACME", expect=4)
    s.run("role", "create", "--name", "Publisher", "--permission", "view_content_views")
    s.run("role", "add-permission", "--name", "Publisher", "--permission", "publish_content_views")
    s.run("user", "grant", "--user", "gus", "--role", "Publisher", "--all-organizations")
    act(s, "gus", "content-view", "publish", "--organization", "ACME", "--content-view", "base")
    rows = audit_rows(s)
    mine = [(r["action"], r["target"], r["organization"]) for r in rows if r["action"].startswith(("user.", "role."))]
    assert ("user.grant", "gus", "ACME") in mine and ("user.revoke", "gus", "ACME") in mine
    assert ("role.create", "Publisher", None) in mine and ("role.add_permission", "Publisher", None) in mine
    publish = next(r for r in rows if r["action"] == "content_view.publish")
    assert publish["actor"] == "gus"  # the acting user, not a settings default
    assert audit_rows(s, "--action", "user.") == [r for r in rows if r["action"].startswith("user.")]
    assert audit_rows(s, "--since", "2999-01-01") == []


# --- 4. trust maps source organizations to destination organizations; the audit of transfers -------


def test_the_mapping_decides_the_destination_organization(tmp_path, published_source):
    dest = make_destination(tmp_path, published_source)
    dest.run("organization", "create", "--name", "Lab", "--label", "LAB")
    entitlements = tmp_path / "lab.json"
    entitlements.write_text(
        '{"manifest_id": "m-lab", "organization": "LAB", "products": '
        f'[{{"label": "{RH}", "name": "RHEL 9", "content_id": "{RH_ID}"}}]}}'
    )
    dest.run("manifest", "import", str(entitlements))
    bundle = Path(
        published_source.json(
            "content-export", "complete", "version", "--organization", "ACME", "--content-view", "base"
        )["path"]
    )
    key = tmp_path / "source.pub"  # make_destination wrote it: ACME -> ACME
    assert dest.json("trust", "list")[0]["organizations"] == {"ACME": "ACME"}
    before = dest.state()
    r = dest.run("content-import", "version", "--organization", "LAB", "--path", str(bundle), expect=3)
    assert "not trusted for organization LAB" in r.output, r.output
    # re-map: ACME of the source now feeds LAB here, and only LAB
    dest.run("trust", "add", "--name", "source", "--public-key", str(key), "--map", "ACME=LAB")
    assert dest.json("trust", "list")[0]["organizations"] == {"ACME": "LAB"}
    before = dest.state()
    r = dest.run("content-import", "version", "--organization", "ACME", "--path", str(bundle), expect=3)
    assert "not trusted for organization ACME" in r.output and "trusted only for: LAB" in r.output, r.output
    # the key feeds ACME too, but from the source's OTHER: ACME's bundle still goes only into LAB
    dest.run("trust", "add", "--name", "source", "--public-key", str(key), "--map", "OTHER=ACME")
    before = dest.state()
    r = dest.run("content-import", "version", "--organization", "ACME", "--path", str(bundle), expect=3)
    assert "goes into organization 'LAB' here, not 'ACME'" in r.output, r.output
    assert dest.state() == before
    imported = dest.json("content-import", "version", "--organization", "LAB", "--path", str(bundle))
    assert imported["state"] == "imported" and imported["organization"] == "LAB"
    assert [
        v["version"]
        for v in dest.json("content-view", "version", "list", "--organization", "LAB", "--content-view", "base")
    ] == ["1.0"]
    dest.run("content-view", "version", "list", "--organization", "ACME", "--content-view", "base", expect=2)
    rows = audit_rows(dest)
    actions = [(r["action"], r["organization"], r["outcome"]) for r in rows]
    assert ("content.import", "LAB", "success") in actions
    assert ("content.import", "ACME", "rejected") in actions and ("content.import", "LAB", "rejected") in actions
    trust = [r for r in rows if r["action"] == "trust.add"]
    assert [t["details"]["organizations"] for t in trust] == [{"OTHER": "ACME"}, {"ACME": "LAB"}, {"ACME": "ACME"}]
    assert {t["actor"] for t in trust} == {"admin"}
    exports = audit_rows(published_source, "--action", "content.export")
    assert exports and all(r["organization"] == "ACME" and r["outcome"] == "success" for r in exports)


def test_a_bundle_of_an_unmapped_organization_is_refused(tmp_path, published_source):
    dest = Server("qa", tmp_path / "qa")
    dest.write_config()
    dest.run("init")
    dest.run("organization", "create", "--name", "QA", "--label", "QA")
    key = tmp_path / "source.pub"
    key.write_text(published_source.json("keys", "show")["public_key"])
    dest.run("trust", "add", "--name", "source", "--public-key", str(key), "--map", "QA-SRC=QA")
    bundle = Path(
        published_source.json(
            "content-export", "complete", "version", "--organization", "ACME", "--content-view", "base"
        )["path"]
    )
    before = dest.state()
    r = dest.run("content-import", "version", "--organization", "QA", "--path", str(bundle), expect=3)
    assert "bundle of organization 'ACME' from source 'source' is refused" in r.output, r.output
    assert "QA-SRC->QA" in r.output and "--map ACME=" in r.output, r.output
    assert dest.state() == before
    rejected = audit_rows(dest, "--action", "content.import")
    assert [(x["organization"], x["outcome"]) for x in rejected] == [("QA", "rejected")]
    assert rejected[0]["details"]["reason"] == "untrusted"


def test_trust_add_needs_a_mapping_and_a_known_organization(tmp_path, published_source):
    dest = make_destination(tmp_path, published_source, name="dest3")
    key = tmp_path / "source.pub"
    before = dest.json("trust", "list")
    for extra, needle in (
        ((), "at least one"),
        (("--map", "ACME"), "SOURCE_ORG=DESTINATION_ORG"),
        (("--map", "ACME=NOPE"), "NOPE"),
        (("--organization", "ACME", "--map", "ACME=LAB"), "already mapped"),
    ):
        r = dest.run("trust", "add", "--name", "source", "--public-key", str(key), *extra, expect=2)
        assert needle in r.output, r.output
    assert dest.json("trust", "list") == before


@pytest.mark.parametrize("account", ["export_account", "import_account"])
def test_service_account_settings_default(tmp_path, account):
    assert getattr(load_settings(None, data_dir=str(tmp_path)), account) == f"iss-{account.split('_')[0]}"
