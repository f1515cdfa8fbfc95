"""`iss destination update --name NAME --online --url URL | --offline`, and `iss destination list`
showing whether each destination is online and its url: through the real CLI."""

from __future__ import annotations

import pytest

from .conftest import CUSTOM
from .servers import Server

ADD = ("destination", "add", "--name", "dc2", "--server-id", "dc2")


def destinations(server: Server) -> dict[str, tuple[bool, str | None]]:
    return {r["destination"]: (r["online"], r["url"]) for r in server.json("destination", "list")}


def audited(server: Server) -> list[dict]:
    return server.json("audit", "list", "--action", "destination.update")


@pytest.fixture
def with_destination(tmp_path, source: Server) -> Server:
    key = tmp_path / "dest.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    source.run(*ADD, "--public-key", str(key))
    return source


def test_a_destination_is_made_online_then_offline_and_list_shows_it(with_destination):
    s = with_destination
    assert destinations(s) == {"dc2": (False, None)}  # no subscription yet, listed all the same
    table = s.run("destination", "list").output
    assert "Destinations" in table and "dc2" in table and "online" in table and "Subscriptions" not in table

    made = s.json("destination", "update", "--name", "dc2", "--online", "--url", "https://dc2.example.com:8443")
    assert made == {
        "name": "dc2",
        "server_id": "dc2",
        "online": True,
        "url": "https://dc2.example.com:8443",
        "changed": True,
    }
    assert destinations(s) == {"dc2": (True, "https://dc2.example.com:8443")}
    s.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    s.run("destination", "subscribe", "--name", "dc2", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")
    [row] = s.json("destination", "list")
    assert (row["repository"], row["online"], row["url"]) == (f"{CUSTOM}/utils", True, "https://dc2.example.com:8443")
    table = s.run("destination", "list").output
    assert "https://dc2.example.com:8443" in table and "yes" in table and "Subscriptions" in table

    assert s.json("destination", "update", "--name", "dc2", "--offline")["changed"] is True
    assert destinations(s) == {"dc2": (False, None)}
    entries = audited(s)
    assert len(entries) == 2
    assert {e["target"] for e in entries} == {"dc2"}
    details = [e["details"] for e in reversed(entries)]  # newest first
    assert details[0]["online"] is True and details[0]["url"] == "https://dc2.example.com:8443"
    assert details[1]["online"] is False and details[1]["was_url"] == "https://dc2.example.com:8443"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--name", "nowhere", "--offline"), "destination 'nowhere' does not exist"),
        (("--name", "nowhere", "--online", "--url", "https://x.example.com"), "destination 'nowhere' does not exist"),
        (("--name", "dc2", "--online"), "--online and --url go together"),
        (("--name", "dc2", "--url", "https://x.example.com"), "give one of --online --url URL or --offline"),
        (("--name", "dc2"), "give one of --online --url URL or --offline"),
        (
            ("--name", "dc2", "--online", "--offline", "--url", "https://x"),
            "give one of --online --url URL or --offline",
        ),
        (("--name", "dc2", "--offline", "--url", "https://x.example.com"), "--online and --url go together"),
        (("--name", "dc2", "--online", "--url", "ftp://dc2"), "--url must be the destination's http(s):// address"),
        (("--name", "dc2", "--online", "--url", "https://"), "with a host"),
        (("--name", "dc2", "--online", "--url", "http://:8443"), "with a host"),
        (("--name", "dc2", "--online", "--url", "http://dc2:port"), "with a host"),
        (("--name", "dc2", "--online", "--url", "dc2.example.com"), "with a host"),
    ],
)
def test_bad_input_is_a_usage_error_and_changes_nothing(with_destination, args, needle):
    s = with_destination
    s.json("destination", "update", "--name", "dc2", "--online", "--url", "https://before.example.com")
    before, audit_before = destinations(s), audited(s)
    r = s.run("destination", "update", *args, expect=2)
    assert needle in r.output, r.output
    assert "Traceback" not in r.output
    assert destinations(s) == before == {"dc2": (True, "https://before.example.com")}
    assert audited(s) == audit_before


def test_add_online_checks_the_url_has_a_host(tmp_path, source: Server):
    key = tmp_path / "dest.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    r = source.run(*ADD, "--public-key", str(key), "--online", "--url", "https://", expect=2)
    assert "with a host" in r.output
    assert source.json("destination", "list") == []
