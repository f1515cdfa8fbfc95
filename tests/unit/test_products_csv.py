"""The products CSV rows: every problem named by row and column, or the file's values."""

from __future__ import annotations

import pytest

from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.products_csv import COLUMNS, CsvProduct, CsvRepository, check_header, parse_rows, to_row


def row(**kw):
    base = dict.fromkeys(COLUMNS, "") | {
        "Name": "Tools",
        "Label": "tools",
        "Organization": "ACME",
        "Red Hat": "no",
        "Repository": "Utils",
        "Repository Label": "utils",
        "Repository Type": "yum",
        "Repository Url": "https://mirror.example.com/tools/utils/",
    }
    return base | kw


def parse(rows, rewrites=()):
    return parse_rows(rows, "ACME", list(rewrites), ["yum"])


def test_rows_become_products_and_repositories():
    f = parse(
        [
            row(),
            row(Repository="More", **{"Repository Label": "more", "Repository Url": ""}),
            row(Name="Empty", Label="empty", Repository="", **{"Repository Label": "", "Repository Url": ""}),
        ]
    )
    assert [p.label for p in f.products] == ["tools", "empty"]
    assert [(r.product, r.label, r.url) for r in f.repositories] == [
        ("tools", "utils", "https://mirror.example.com/tools/utils/"),
        ("tools", "more", None),
    ]


def test_to_row_then_parse_gives_the_same_values():
    p = CsvProduct("rhel-9", "RHEL 9", "the OS", True, "rh-479", 2)
    r = CsvRepository("rhel-9", "baseos", "BaseOS", "yum", "https://cdn.example.com/b/", 2)
    f = parse([to_row("ACME", p, r)])
    assert f.products == (p,) and f.repositories == (r,)


def test_every_bad_row_is_named_with_its_column():
    rows = [
        row(),
        row(**{"Repository Url": "ftp://x/"}),  # row 3
        row(Label="bad label", Repository="X", **{"Repository Label": "x"}),  # row 4
        row(Organization="OTHER", **{"Repository Label": "y"}),  # row 5
        row(**{"Red Hat": "maybe", "Repository Label": "z"}),  # row 6
        row(Name="RH", Label="rh", **{"Red Hat": "yes", "Repository Label": "q"}),  # row 7: no content set
        row(),  # row 8: the same repository as row 2
        row(Name="Tools 2", **{"Repository Label": "w"}),  # row 9: product described differently
    ]
    with pytest.raises(UsageError) as e:
        parse(rows)
    text = "\n".join(e.value.problems)
    for expected in (
        "row 3, column 'Repository Url'",
        "row 4, column 'Label'",
        "row 5, column 'Organization'",
        "row 6, column 'Red Hat'",
        "row 7, column 'Content Set'",
        "row 8, column 'Repository Label'",
        "row 9, column 'Label'",
    ):
        assert expected in text, text
    assert not any(p.startswith("row 2") for p in e.value.problems)
    assert "nothing was written" in e.value.message


def test_url_rewrite_applies_before_the_check():
    f = parse([row()], [("https://mirror.example.com", "file:///srv/mirror")])
    assert f.repositories[0].url == "file:///srv/mirror/tools/utils/"


def test_header_must_name_the_columns():
    with pytest.raises(UsageError, match="missing: Repository Url"):
        check_header(["Name", "Label", "Repository"])
    with pytest.raises(UsageError, match="missing"):
        check_header(None)
