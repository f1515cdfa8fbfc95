"""Planning a pull the destination asked for (services/pull_requests.py): what to stream, from where."""

from __future__ import annotations

import pytest

from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.services.pull_requests import (
    PullPlan,
    RepositoryPullPlan,
    plan_pull,
    plan_repository_pull,
    repository_stream_location,
    stream_base,
    stream_location,
    stream_origin,
)

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


# --- a repository asked for (iss content-import request --repository) -------------------------------


def _versions(*digests: str) -> list:
    from datetime import UTC, datetime

    from iss_plugin.adapters.backends.base import VersionInfo

    return [VersionInfo(n, datetime(2026, 12, 1, tzinfo=UTC), n * 10, d) for n, d in enumerate(digests, 1)]


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (None, RepositoryPullPlan(4, "d", 40, None)),  # nothing held: the latest, in full
        ("b", RepositoryPullPlan(4, "d", 40, 3)),  # from the newest version with the held digest
        ("a", RepositoryPullPlan(4, "d", 40, 1)),
        ("zz", RepositoryPullPlan(4, "d", 40, None)),  # a digest the source never had: in full
        ("d", None),  # holds the latest: nothing to send
    ],
)
def test_plan_repository_pull(held, expected):
    assert plan_repository_pull(_versions("a", "b", "b", "d"), held) == expected


def test_no_repository_pull_without_versions():
    assert plan_repository_pull([], None) is None


def test_a_repository_stream_location_names_its_base_version_and_gives_it_back():
    url = repository_stream_location("https://src.example/", "ACME", "tools", "el9", 3)
    assert url == "https://src.example/api/v1/bundles/stream?organization=ACME&product=tools&repository=el9&base=3"
    assert stream_base(url) == 3 and stream_origin(url) == "https://src.example"
    assert stream_base(repository_stream_location("https://src.example", "ACME", "tools", "el9", None)) is None


@pytest.mark.parametrize("query", ["base=1.0", "base=-1", "base=1&base=2", "base=" + "9" * 13])
def test_a_repository_stream_base_that_is_no_version_number_is_refused(query):
    with pytest.raises(ImportRuleViolation, match="not one repository version number"):
        stream_base(f"https://src.example/api/v1/bundles/stream?organization=A&product=p&repository=r&{query}")


# --- which trusted source a request goes to (domain.trust.choose_source) -----------------------------


def _known(name: str, server: str, **organizations: str):
    from iss_plugin.domain.trust import KnownSource

    return KnownSource(name, server, organizations)


def test_the_one_source_that_maps_the_organization_is_asked_by_default():
    from iss_plugin.domain.trust import RequestTarget, choose_source

    sources = [_known("cdn", "cdn-1", ACME="ACME"), _known("lab", "lab-1", LAB="ACME-Lab")]
    assert choose_source(sources, "ACME", None) == RequestTarget("cdn", "cdn-1", "ACME")
    # two entries of one server (an old and a new key) that map it alike are one source
    rotated = [*sources, _known("cdn-2027", "cdn-1", ACME="ACME")]
    assert choose_source(rotated, "ACME", None).server_id == "cdn-1"
    assert choose_source(rotated, "ACME", "cdn-2027") == RequestTarget("cdn-2027", "cdn-1", "ACME")


@pytest.mark.parametrize(
    ("organization", "named", "message"),
    [
        ("ACME", None, "organization 'ACME' is fed by several trusted sources here: cdn (server cdn-1, into ACME)"),
        ("NOPE", None, "organization 'NOPE' is not mapped to one here by any trusted source"),
        ("ACME", "nope", "--source 'nope' is not a trusted source here (trusted: cdn (server cdn-1)"),
        ("LAB", "cdn", "trusted source 'cdn' does not map organization 'LAB'"),
    ],
)
def test_an_unclear_source_is_refused_saying_what_to_do(organization, named, message):
    from iss_plugin.domain.errors import UsageError
    from iss_plugin.domain.trust import choose_source

    sources = [_known("cdn", "cdn-1", ACME="ACME"), _known("mirror", "mirror-1", ACME="ACME", LAB="ACME-Lab")]
    with pytest.raises(UsageError) as raised:
        choose_source(sources, organization, named)
    assert message in raised.value.message and "nothing was requested" in raised.value.message
    assert any(hint in raised.value.message for hint in ("--source NAME", "iss trust"))
