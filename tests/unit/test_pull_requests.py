"""Planning a pull the destination asked for (services/pull_requests.py): what to stream, from where."""

from __future__ import annotations

import pytest

from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.services.pull_requests import PullPlan, plan_pull, stream_location, stream_origin

V = VersionNumber.parse
HERE = [V("1.0"), V("2.0"), V("2.1"), V("3.0")]


@pytest.mark.parametrize(
    ("wanted", "held", "expected"),
    [
        (None, None, PullPlan(V("3.0"), None)),  # nothing held: the latest, in full
        (None, V("2.0"), PullPlan(V("3.0"), V("2.0"))),  # from what it holds
        (V("2.1"), V("1.0"), PullPlan(V("2.1"), V("1.0"))),
        (V("2.0"), V("2.1"), PullPlan(V("2.0"), None)),  # an older version than held: in full
        (None, V("1.5"), PullPlan(V("3.0"), None)),  # a base the source does not have: in full
        (None, V("3.0"), None),  # holds the latest: nothing to send
        (V("2.0"), V("2.0"), None),
        (V("9.0"), None, None),  # no such version here
    ],
)
def test_plan_pull(wanted, held, expected):
    assert plan_pull(HERE, wanted, held) == expected


def test_nothing_to_plan_without_versions():
    assert plan_pull([], None, None) is None


def test_a_stream_location_names_the_version_and_base_and_gives_back_its_origin():
    url = stream_location("https://src.example:8443/iss/", "ACME", "base", V("2.0"), V("1.0"))
    assert url == (
        "https://src.example:8443/iss/api/v1/bundles/stream?organization=ACME&content_view=base&version=2.0&base=1.0"
    )
    assert stream_origin(url) == "https://src.example:8443/iss"
    full = stream_location("http://127.0.0.1:8000", "ACME", "base", V("1.0"), None)
    assert "base=" not in full and stream_origin(full) == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    "location",
    ["file:///srv/bundle.tgz", "http://src.example/api/v1/bundles/123/download", "ftp://x/api/v1/bundles/stream"],
)
def test_a_location_that_is_no_stream_is_refused(location):
    with pytest.raises(ImportRuleViolation, match="is not a source's /api/v1/bundles/stream"):
        stream_origin(location)
