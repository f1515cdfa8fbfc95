"""Multi-hop (embedded: memory://, SQLite, three servers in one process on one exchange): A -> B -> C.

B imports A's view; an admin on B blesses the imported view (pass it on) and subscribes C. From then
on each version B imports is announced as B's publish in the import's transaction, and B's export
worker sends it to C signed by B's key (C trusts only B). Each server has its own queue prefix: an
export worker skips publishes another iss server announced on the shared exchange."""

from __future__ import annotations

from sqlalchemy import select

from consumers.demo import ORG, make_server, prepare_destination
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services import content_views, propagation, subscriptions

from .conftest import ACTOR, CV, exports, imports, outbox, pins, publish, subscription, versions, wait_until
from .test_embedded import change_source

T = 60


def test_a_destination_passes_imported_versions_on_to_its_own_destination(embedded, tmp_path):
    a = embedded.src
    b = make_server(tmp_path, "B", bus={**embedded.bus, "prefix": embedded.bus["prefix"] + "-b"})
    c = make_server(tmp_path, "C", bus={**embedded.bus, "prefix": embedded.bus["prefix"] + "-c"})
    embedded.runtimes += [_Closer(b), _Closer(c)]
    prepare_destination(b, a, tmp_path, ACTOR)  # B trusts A
    subscriptions.add_destination(a.uow(), "B", "B", b.signer.public_pem, ACTOR)  # (and the fixture's, idle)
    subscriptions.subscribe(a.uow(), "B", ORG, CV, None, ACTOR)
    prepare_destination(c, b, tmp_path, ACTOR)  # C trusts B only
    embedded.run(a, "relay", "export", "status")
    embedded.run(b, "relay", "import", "export", "status")
    embedded.run(c, "relay", "import")

    publish(a)
    wait_until(lambda: versions(b) == ["1.0"], T, "1.0 on B")
    assert outbox(b, ev.CONTENT_VIEW_PUBLISHED) == []  # not passed on until an admin on B says so

    content_views.set_blessed(b.uow(), ORG, CV, True, ACTOR)
    subscriptions.add_destination(b.uow(), "C", "C", c.signer.public_pem, ACTOR)
    subscriptions.subscribe(b.uow(), "C", ORG, CV, None, ACTOR)
    propagation.reconcile(b.uow(), b.source_context())  # C is behind: 1.0 goes out from B
    wait_until(lambda: versions(c) == ["1.0"], T, "1.0 on C")

    change_source(embedded, "second")
    publish(a)
    wait_until(lambda: versions(c) == ["1.0", "2.0"], T, "2.0 on C, through B, with nobody typing")
    for v in ("1.0", "2.0"):
        assert pins(c, v) == pins(b, v) == pins(a, v)
    announced = outbox(b, ev.CONTENT_VIEW_PUBLISHED)
    assert [(e.body["data"]["version"], e.body["source"]) for e in announced] == [("2.0", "B")]
    assert [(e.version, e.kind, e.base) for e in exports(b)] == [("1.0", "full", None), ("2.0", "incremental", "1.0")]
    assert [(e.version, e.kind) for e in exports(a)] == [("1.0", "full"), ("2.0", "incremental")]  # not B's events
    assert [(i.version, i.source_server, i.state) for i in imports(c)] == [
        ("1.0", "B", "imported"),
        ("2.0", "B", "imported"),
    ]
    wait_until(lambda: subscription(b).acknowledged == "2.0", T, "C's acknowledgement on B")
    wait_until(lambda: _acknowledged(a, "B") == "2.0", T, "B's acknowledgement on A")
    with a.session_factory() as s:  # A's export worker saw B's publish and left it to B
        assert s.get(m.ProcessedEvent, (announced[0].event_id, "export")) is None


def _acknowledged(app, destination: str) -> str | None:
    with app.session_factory() as s:
        sub = s.scalar(select(m.Subscription).join(m.Destination).where(m.Destination.server_id == destination))
        return sub.acknowledged if sub else None


class _Closer:
    def __init__(self, app) -> None:
        self.app = app

    def shutdown(self) -> None:
        self.app.close()
