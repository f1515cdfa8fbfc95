"""/metrics' types and the unroutable queue's depth through the real app (TestClient over
create_app) on a real RabbitMQ vhost: a relay pass with no worker queue bound sends every event
to the unroutable queue; no counter goes down across it, the backlog gauge does, and the overview
and `iss_unroutable_messages` show the queue's depth. A broker that is down: both still answer."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from consumers.demo import ORG
from iss_plugin.adapters.bus.relay import relay_from_settings
from iss_plugin.adapters.bus.unroutable import UnroutableQueue
from iss_plugin.bootstrap import App
from iss_plugin.services import identity
from iss_plugin.web.app import create_app
from tests.integration.bus.conftest import rabbit_vhost, session_vhost, unique_bus  # noqa: F401

from .conftest import make_source, user_with

pytestmark = pytest.mark.rabbitmq
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)
GAUGES = {
    "iss_outbox_backlog",
    "iss_parked_messages",
    "iss_bus_up",
    "iss_unroutable_messages",
    "iss_transfer_bytes",
    "iss_transfer_bundles",
    "iss_transfers",
    "iss_destination_lag_versions",
    "iss_destination_lag_seconds",
}
DOWN = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1


def client_of(app: App) -> TestClient:
    token = identity.read_credentials(app.settings.data_dir / identity.CREDENTIALS_NAME)
    return TestClient(create_app(app), headers={"Authorization": f"Bearer {token}"})


def scrape(client: TestClient) -> tuple[dict[str, str], dict[tuple[str, tuple], float]]:
    """The TYPE of every family, and every sample's value by (name, labels)."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text[:500]
    types = dict(TYPE_LINE.findall(r.text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    return types, samples


@pytest.fixture
def source(tmp_path, rabbit_vhost):  # noqa: F811
    app = make_source(tmp_path, bus=unique_bus(rabbit_vhost))
    yield app
    app.close()


def test_no_counter_goes_down_across_a_relay_pass_and_unroutable_messages_are_a_gauge(source):
    with client_of(source) as client:
        types, before = scrape(client)
        assert {name: kind for name, kind in types.items() if name in GAUGES} == dict.fromkeys(GAUGES, "gauge")
        assert types["iss_events_total"] == "counter" and types["iss_transfer_duration_seconds"] == "summary"
        backlog = before[("iss_outbox_backlog", ())]
        assert backlog >= 1
        assert not [k for k in before if k[0] == "iss_events_total" and ("outcome", "pending") in k[1]]
        assert before[("iss_unroutable_messages", ())] == 0

        relay = relay_from_settings(source.settings, source.session_factory)  # no worker queue: all unroutable
        try:
            sent = relay.run_once().published
        finally:
            relay.close()
        assert sent == backlog

        types_after, after = scrape(client)
        counters = {name for name, kind in types_after.items() if kind in ("counter", "summary")}
        went_down = {
            key: (value, after.get(key))
            for key, value in before.items()
            if _family(key[0], types_after) in counters and after.get(key, -1) < value
        }
        assert went_down == {}
        assert after[("iss_outbox_backlog", ())] == 0
        sent_total = sum(
            v for (name, labels), v in after.items() if name == "iss_events_total" and ("outcome", "sent") in labels
        )
        assert sent_total == backlog
        assert after[("iss_unroutable_messages", ())] == backlog
        assert UnroutableQueue(source.settings.bus, _topology(source)).count() == backlog

        page = client.get("/")
        assert page.status_code == 200
        card = _card(page.text, "unroutable messages")
        assert f'<div class="value bad">{int(backlog)}</div>' in card and "iss bus unroutable list" in card

    # the messages are of any organization: a viewer of one organization sees no such card
    scoped = user_with(source, "acme-viewer", "Viewer", ORG)
    with TestClient(create_app(source), headers={"Authorization": f"Bearer {scoped}"}) as client:
        page = client.get("/")
        assert page.status_code == 200 and "parked messages" in page.text and "unroutable" not in page.text


def test_a_broker_that_is_down_leaves_the_overview_and_metrics_answering(tmp_path):
    app = make_source(tmp_path, bus=unique_bus(DOWN))
    try:
        with client_of(app) as client:
            page = client.get("/")
            assert page.status_code == 200, page.text[:500]
            card = _card(page.text, "unroutable messages")
            assert ">?</div>" in card and "broker not reachable" in card
            types, samples = scrape(client)
            assert types["iss_unroutable_messages"] == "gauge"
            assert ("iss_unroutable_messages", ()) not in samples and samples[("iss_bus_up", ())] == 0
    finally:
        app.close()


def _family(sample: str, types: dict[str, str]) -> str:
    """The family a sample belongs to (a counter's TYPE line names `<name>_total`, a summary's not)."""
    if sample in types:
        return sample
    return sample.removesuffix("_count").removesuffix("_sum")


def _topology(app: App):
    from iss_plugin.adapters.bus.topology import build

    return build(app.settings.bus)


def _card(html: str, title: str) -> str:
    """The overview card called `title` (the last card ends where the next heading starts)."""
    start = html.index(f'<div class="muted">{title}</div>')
    ends = [i for i in (html.find('<div class="card">', start), html.find("<h2>", start)) if i != -1]
    return html[start : min(ends)]
