"""bundle.ready copies for many destinations: validated whole once, then only their destination
(services/outbox.py); anything else that differs is validated whole again."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

import schemas
from iss_plugin.adapters.db.models import Base, OutboxEvent
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import SchemaViolation
from iss_plugin.services.outbox import add_event

DIGEST = "sha256:" + "a" * 64


def _ready(destination: object, **changes: object) -> dict:
    data = {
        "bundle_id": "0123456789abcdef0123456789abcdef",
        "source_server": "source",
        "destination": destination,
        "organization": "ACME",
        "kind": "full",
        "location": "file:///var/lib/iss/exports/bundle.tgz",
        "format": "tgz",
        "size": 1234,
        "base": None,
        "repositories": [{"product": "tools", "repository": "el9", "package_count": 3, "package_set_digest": DIGEST}],
        "content_view": "base",
        "version": "1.0",
    }
    return data | changes


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[OutboxEvent.__table__])
    with Session(engine) as s:
        yield s


def _add(session: Session, data: dict) -> str:
    target = data["destination"] if isinstance(data["destination"], str) and data["destination"] else "x"
    return add_event(session, ev.BUNDLE_READY, data, source="source", subject=data["bundle_id"], target_server=target)


def test_copies_for_other_destinations_are_written_and_a_bad_destination_is_refused(session):
    for name in ("east", "west", "north-1"):
        _add(session, _ready(name))
    session.flush()
    rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [(r.routing_key, r.body["data"]["destination"]) for r in rows] == [
        ("iss.bundle.ready.east", "east"),
        ("iss.bundle.ready.west", "west"),
        ("iss.bundle.ready.north-1", "north-1"),
    ]
    for bad in ("two..dots", "-dash-first", "a" * 129, 7, None):
        with pytest.raises(SchemaViolation) as e:
            _add(session, _ready(bad))
        assert any(p.startswith("data/destination") for p in e.value.problems), e.value.problems


def test_a_copy_that_differs_elsewhere_is_validated_whole(session):
    _add(session, _ready("east"))
    with pytest.raises(SchemaViolation) as e:
        _add(session, _ready("west", size=-1))
    assert any(p.startswith("data/size") for p in e.value.problems), e.value.problems


def test_the_destination_is_constrained_only_by_its_own_definition():
    """The shortcut relies on it: if a rule elsewhere in the schema named the destination, a copy
    for another destination would need validating whole."""
    schema = schemas.load(ev.schema_path(ev.BUNDLE_READY))
    data = schema["$defs"]["data"]
    assert data["properties"]["destination"] == {"$ref": "#/$defs/server_id"}
    text = json.dumps({k: v for k, v in schema.items() if k != "description"})
    quoted = [m.start() for m in re.finditer(r'"destination"', text)]
    assert len(quoted) == 2, "destination is named in data.required and data.properties only"
    assert "destination" in data["required"]
