"""Event envelopes and schemas: examples validate, builders produce valid data, bad events are named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import schemas
from iss_plugin.adapters.bus.codec import DecodeError, check_envelope, decode, encode, envelope_problems
from iss_plugin.domain import events as E
from iss_plugin.domain.errors import SchemaViolation

ROOT = Path(schemas.__file__).parent
EXAMPLES = sorted((ROOT / "examples" / "events").glob("*.json"))
D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_type_has_a_schema_and_an_example():
    assert {p.stem for p in EXAMPLES} == set(E.EVENT_TYPES)
    for t in E.EVENT_TYPES:
        assert (ROOT / E.schema_path(t)).is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate(path):
    event = load(path)
    assert envelope_problems(event) == []
    assert schemas.problems("events/cloudevent.v1.json", event) == []
    assert event["dataschema"].endswith(E.schema_path(event["type"]))


def test_the_envelope_part_is_the_same_in_every_schema():
    shared = None
    for t in E.EVENT_TYPES:
        s = copy.deepcopy(schemas.load(E.schema_path(t)))
        props = s["properties"]
        assert props.pop("type") == {"const": t}
        assert props.pop("dataschema") == {"const": f"{E.SCHEMA_BASE}{E.schema_path(t)}"}
        props.pop("data")
        view = (props, s["required"], s["propertyNames"], s["additionalProperties"])
        shared = shared or view
        assert view == shared, t


BREAKAGES = [
    ("iss.content_view.published.v1", lambda e: e["data"].pop("version"), "data: 'version' is a required"),
    ("iss.content_view.published.v1", lambda e: e["data"].update(content_view="../etc"), "data/content_view"),
    ("iss.content_view.published.v1", lambda e: e["data"].update(version="2"), "data/version"),
    ("iss.content_view.published.v1", lambda e: e["data"].update(content_view_id=7), "data: Additional properties"),
    ("iss.repository.changed.v1", lambda e: e["data"].update(package_set_digest="md5:x"), "data/package_set_digest"),
    ("iss.bundle.ready.v1", lambda e: e["data"].update(location="ftp://x/y"), "data/location"),
    ("iss.bundle.ready.v1", lambda e: e["data"].update(kind="partial"), "data/kind"),
    ("iss.bundle.ready.v1", lambda e: e["data"].update(product="p", repository="r"), "data"),
    ("iss.bundle.rejected.v1", lambda e: e["data"].update(reason="because"), "data/reason"),
    ("iss.bundle.rejected.v1", lambda e: e["data"].pop("has"), "data: 'has' is a required"),
    ("iss.export.requested.v1", lambda e: e["data"].pop("content_view"), "data"),
    ("iss.bundle.imported.v1", lambda e: e.update(specversion="0.3"), "specversion"),
    ("iss.bundle.imported.v1", lambda e: e.update(time="yesterday"), "time"),
    (
        "iss.bundle.imported.v1",
        lambda e: e.update(time="2026-02-30T10:00:00Z"),
        "time",
    ),  # the pattern fits, the date does not
    ("iss.bundle.ready.v1", lambda e: e["data"].update(location="http://exa mple/b.tar.gz"), "data/location"),
    ("iss.bundle.imported.v1", lambda e: e.update(Bad_Attr="x"), "(top)"),
    ("iss.bundle.imported.v1", lambda e: e.update(type="iss.bundle.imported.v9"), "type"),
]


@pytest.mark.parametrize("event_type, breakage, where", BREAKAGES)
def test_broken_events_are_rejected_naming_the_place(event_type, breakage, where):
    event = load(ROOT / "examples" / "events" / f"{event_type}.json")
    breakage(event)
    problems = envelope_problems(event)
    assert problems and any(p.startswith(where) or where in p for p in problems), problems
    with pytest.raises(SchemaViolation) as err:
        check_envelope(event)
    assert err.value.reason == "schema" and err.value.problems == problems


def test_a_newline_does_not_sneak_past_a_label_pattern():
    event = load(ROOT / "examples" / "events" / "iss.content_view.published.v1.json")
    event["data"]["organization"] = "ACME\n"
    assert any("data/organization" in p for p in envelope_problems(event))


def test_builders_make_valid_events_of_every_type():
    repo = E.repository_state("tools", "el8", 12, D1, redhat=False, content_type="yum")
    held = E.holding([E.repository_state("tools", "el8", 10, D2)], "1.0")
    data = {
        E.CONTENT_VIEW_PUBLISHED: E.content_view_published(
            organization="ACME", content_view="base", version="2.0", repositories=[repo], blessed=True
        ),
        E.REPOSITORY_CHANGED: E.repository_changed(
            organization="ACME", product="tools", repository="el8", version=3, package_count=12, package_set_digest=D1
        ),
        E.EXPORT_REQUESTED: E.export_requested(
            organization="ACME", destination="dest-1", reason="base_mismatch", content_view="base", base=held
        ),
        E.BUNDLE_READY: E.bundle_ready(
            bundle_id="b-1",
            source_server="src",
            destination="dest-1",
            organization="ACME",
            kind="incremental",
            base=held,
            location="file:///var/lib/iss/exports/b-1",
            format="dir",
            repositories=[repo],
            content_view="base",
            version="2.0",
        ),
        E.BUNDLE_IMPORTED: E.bundle_imported(
            bundle_id="b-1",
            source_server="src",
            destination="dest-1",
            organization="ACME",
            repositories=[repo],
            product="tools",
            repository="el8",
        ),
        E.BUNDLE_REJECTED: E.bundle_rejected(
            bundle_id="b-1",
            source_server="src",
            destination="dest-1",
            reason="base_mismatch",
            message="no base",
            has=None,
        ),
    }
    for event_type, payload in data.items():
        env = E.make_envelope(event_type, E.source_for_server("src"), payload, subject="ACME/base")
        assert envelope_problems(env) == [], event_type
        assert E.Event.from_envelope(env).to_envelope() == env


def test_rejection_reasons_are_the_schema_enum():
    enum = schemas.load(E.schema_path(E.BUNDLE_REJECTED))["$defs"]["data"]["properties"]["reason"]["enum"]
    assert tuple(enum) == E.REJECTION_REASONS
    with pytest.raises(ValueError):
        E.bundle_rejected(bundle_id=None, source_server="s", destination="d", reason="nope", message="m")


def test_routing_keys():
    assert E.routing_key(E.CONTENT_VIEW_PUBLISHED) == "iss.content_view.published"
    assert E.routing_key(E.BUNDLE_READY, "dest-1") == "iss.bundle.ready.dest-1"
    assert E.routing_key(E.BUNDLE_REJECTED, "src.example.com") == "iss.bundle.rejected.src.example.com"
    for bad in ("a*b", "#", ""):
        with pytest.raises(ValueError):
            E.routing_key(E.BUNDLE_READY, bad)


def test_encode_decode_round_trip_and_decode_errors():
    env = load(EXAMPLES[0])
    assert decode(encode(env)) == env
    for body in (b"\xff", b"[]", b"", b"null"):
        with pytest.raises(DecodeError):
            decode(body)


def test_unknown_type_is_reported_with_the_known_ones():
    problems = envelope_problems({"type": "iss.nope.v1"})
    assert any("is not an iss event type" in p for p in problems)
    assert envelope_problems("text") == ["(top): an event is a JSON object, not str"]


def test_a_destination_failure_is_destination_error_and_refusals_keep_their_reasons():
    from iss_plugin.domain import errors

    destination_failures = [
        errors.BackendError("createrepo_c failed"),
        errors.IssError("not enough space in /var/lib/iss/imports to open the bundle"),
        errors.ConfigError("no signing key"),
    ]
    for e in destination_failures:
        assert E.rejection_reason(e) == "destination_error", e
    assert [E.import_failure_reason(e) for e in destination_failures] == ["destination_error"] * 2 + ["config"]
    refusals = {
        errors.BaseMismatch("no base"): "base_mismatch",
        errors.UntrustedSource("who?"): "untrusted",
        errors.BundleIntegrityError("bad"): "integrity",
        errors.ImportRuleViolation("rh into custom"): "rule_violation",
        errors.SchemaViolation("bad manifest"): "schema",
        errors.Forbidden("no import_content"): "forbidden",
        errors.NotAuthenticated("unknown key"): "rule_violation",  # as before: the schema has no such reason
        errors.RejectedInput("wrong scope"): "rule_violation",
    }
    for e, reason in refusals.items():
        assert E.rejection_reason(e) == reason, e
        assert E.import_failure_reason(e) == e.reason  # the CLI keeps a refusal's own code
    transient = errors.BackendError("cannot reach Pulp", transient=True)
    assert E.import_failure_reason(transient) == "backend"


def test_the_schema_takes_a_destination_error_answer():
    data = E.bundle_rejected(
        bundle_id="b-1",
        source_server="src",
        destination="dest-1",
        reason="destination_error",
        message="cannot publish 'ACME/tools/el8': Pulp task failed: No space left on device",
        organization="ACME",
        content_view="base",
        version="2.0",
    )
    env = E.make_envelope(E.BUNDLE_REJECTED, E.source_for_server("dest-1"), data, subject="ACME/base/2.0")
    assert envelope_problems(env) == []
    assert "has" not in env["data"]  # only base_mismatch needs what the destination holds
