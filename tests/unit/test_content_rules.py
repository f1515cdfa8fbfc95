"""Sync URLs, their overrides, and Red Hat content kept out of custom products (pure rules)."""

from __future__ import annotations

import pytest

from iss_plugin.domain.content_rules import (
    IncomingPackage,
    RedHatSource,
    SyncLocation,
    check_sync_url,
    effective_sync_url,
    is_under,
    join_url,
    parse_url_rewrite,
    red_hat_packages_refused,
    refuse_red_hat_url,
    rewrite_url,
)
from iss_plugin.domain.errors import RejectedInput, UsageError


@pytest.mark.parametrize("url", ["https://cdn.example.com/repo/", "http://h:8080/a", "file:///srv/repo/"])
def test_good_sync_urls(url):
    assert check_sync_url(url) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://h/repo/", "scheme must be one of file, http, https"),
        ("https://h/a b/", "spaces"),
        ("https://h/a\tb/", "spaces"),
        ("", "empty"),
        ("https:///repo/", "no host name"),
        ("file:relative/path", "absolute path"),
        ("/srv/repo", "scheme"),
        ("http://h:99999/", "not a URL"),
    ],
)
def test_bad_sync_urls_say_why(url, says):
    with pytest.raises(UsageError, match="--url") as e:
        check_sync_url(url)
    assert says in e.value.message


def test_join_url_has_one_slash_and_a_trailing_one():
    assert join_url("https://h/base", "utils") == "https://h/base/utils/"
    assert join_url("https://h/base/", "/repos/p/r") == "https://h/base/repos/p/r/"
    assert join_url("file:///srv/x/", "") == "file:///srv/x/"


def loc(**kw):
    base = {
        "label": "baseos",
        "redhat": True,
        "upstream": "https://cdn.redhat.com/rhel9/baseos/",
        "repository_override": None,
        "product_override": None,
        "cdn_url": None,
        "relative_path": "repos/rhel-9/baseos",
    }
    return SyncLocation(**(base | kw))


def test_effective_url_the_most_specific_setting_wins():
    assert effective_sync_url(loc()) == ("https://cdn.redhat.com/rhel9/baseos/", "upstream")
    assert effective_sync_url(loc(cdn_url="file:///exp/b1")) == (
        "file:///exp/b1/repos/rhel-9/baseos/",
        "organization CDN",
    )
    assert effective_sync_url(loc(cdn_url="file:///exp", product_override="http://m/p")) == (
        "http://m/p/baseos/",
        "product override",
    )
    assert effective_sync_url(loc(cdn_url="file:///e", product_override="http://m/p", repository_override="http://o/"))[
        1
    ] == ("repository override")
    assert effective_sync_url(loc(upstream=None)) == (None, "none")


def test_the_cdn_only_moves_red_hat_repositories():
    assert effective_sync_url(loc(redhat=False, cdn_url="file:///exp")) == (
        "https://cdn.redhat.com/rhel9/baseos/",
        "upstream",
    )


@pytest.mark.parametrize(
    ("url", "base", "under"),
    [
        ("https://h/a/b/", "https://h/a", True),
        ("https://h/a", "https://h/a/", True),
        ("HTTPS://H/a/b", "https://h/a/", True),
        ("https://h/ab/", "https://h/a/", False),
        ("https://h/a/../b/", "https://h/a/", False),
        ("https://h/x/../a/c", "https://h/a/", True),
        ("https://h/%61/c", "https://h/a/", True),
        ("http://h/a/b", "https://h/a/", False),
        ("https://other/a/b", "https://h/a/", False),
        ("file:///srv/exp/repos/r/", "file:///srv/exp", True),
        ("https://h/a/", "https://h/a/b/", False),
    ],
)
def test_is_under(url, base, under):
    assert is_under(url, base) is under


def test_a_red_hat_url_for_a_custom_repository_is_refused_saying_which_source():
    sources = [RedHatSource("file:///srv/exports/b1/repos/rhel-9/baseos/", "Red Hat repository rhel-9/baseos")]
    refuse_red_hat_url("tools/utils", "file:///srv/exports/b1/repos/tools/utils/", sources)  # a sibling: fine
    with pytest.raises(RejectedInput) as e:
        refuse_red_hat_url("tools/utils", "file:///srv/exports/b1/repos/rhel-9/baseos/", sources)
    assert "tools/utils" in e.value.message and "rhel-9/baseos" in e.value.message
    assert "never receives Red Hat content" in e.value.message


def test_red_hat_packages_are_named_with_their_repository():
    holders = {"a" * 64: "rhel-9/baseos"}
    incoming = [IncomingPackage("bash-5.rpm", "A" * 64), IncomingPackage("mine-1.rpm", "b" * 64)]
    problems = red_hat_packages_refused("tools/utils", incoming, holders)
    assert len(problems) == 1
    assert "bash-5.rpm" in problems[0] and "rhel-9/baseos" in problems[0] and "tools/utils" in problems[0]
    assert red_hat_packages_refused("tools/utils", incoming[1:], holders) == []


def test_url_rewrite():
    rule = parse_url_rewrite("https://cdn.example.com=file:///srv/mirror")
    assert rewrite_url("https://cdn.example.com/x/", [rule]) == "file:///srv/mirror/x/"
    assert rewrite_url("https://other/x/", [rule]) == "https://other/x/"
    for bad in ("nothing", "=file:///x", "https://a="):
        with pytest.raises(UsageError, match="--url-rewrite"):
            parse_url_rewrite(bad)
    with pytest.raises(UsageError, match="scheme"):
        parse_url_rewrite("https://a=ftp://b")
