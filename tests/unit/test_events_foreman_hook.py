"""The Foreman webhook bridge's mapping (no broker)."""

from __future__ import annotations

import copy

import pytest

from iss_plugin.adapters.bus.codec import envelope_problems
from producers import foreman_hook as hook


def test_katello_template_variables_map_to_a_valid_event():
    event = hook.to_event(hook.EXAMPLE_PAYLOAD, source="urn:foreman:f.example.com")
    assert envelope_problems(event) == []
    assert event["data"]["version"] == "3.0" and event["data"]["origin"] == "foreman"
    assert event["subject"] == "ACME/RHEL_8_Base/3.0"
    assert "content_view_id" not in event["data"]  # Foreman's ids mean nothing elsewhere


def test_nested_objects_are_understood_too():
    webhook = {
        "event_name": "actions.katello.content_view.publish_succeeded",
        "payload": {
            "content_view": {"id": 7, "name": "Base", "label": "base"},
            "organization": {"id": 1, "name": "ACME", "label": "ACME"},
            "version": {"major": 4, "minor": 1},
        },
    }
    event = hook.to_event(webhook, source="urn:foreman:x")
    assert (event["data"]["content_view"], event["data"]["version"]) == ("base", "4.1")
    assert envelope_problems(event) == []


@pytest.mark.parametrize("version, expected", [("2.0", "2.0"), (3, "3.0"), ({"version": "5.2"}, "5.2")])
def test_version_forms(version, expected):
    webhook = copy.deepcopy(hook.EXAMPLE_PAYLOAD)
    webhook["payload"]["version"] = version
    assert hook.to_event(webhook, source="s")["data"]["version"] == expected


def test_the_event_id_is_stable_for_the_same_version():
    a = hook.to_event(hook.EXAMPLE_PAYLOAD, source="s")
    b = hook.to_event(copy.deepcopy(hook.EXAMPLE_PAYLOAD), source="s")
    other = copy.deepcopy(hook.EXAMPLE_PAYLOAD)
    other["payload"]["content_view_version_name"] = "RHEL 8 Base 4.0"
    assert a["id"] == b["id"] != hook.to_event(other, source="s")["id"]


def test_other_events_and_missing_fields_are_refused():
    with pytest.raises(hook.HookError, match="not a content view publish"):
        hook.to_event({"event_name": "host_created.event.foreman", "payload": {}}, source="s")
    with pytest.raises(hook.HookError, match="content view version"):
        hook.to_event({"payload": {"organization_label": "A", "content_view_label": "b"}}, source="s")
