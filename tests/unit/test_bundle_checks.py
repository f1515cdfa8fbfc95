"""The pure checks behind the bundle reader and writer (no file system)."""

import pytest

from iss_plugin.adapters.bundles.checks import (
    Member,
    ReadLimits,
    capped,
    manifest_consistency_problems,
    member_problems,
    normalize_member_name,
    path_problem,
)

ONLY = "bundles hold only regular files and directories"


@pytest.mark.parametrize(
    "path, problem",
    [
        ("products.csv", None),
        ("repos/p/r/Packages/b/bash-5.1-1.el9+x~y^z.x86_64.rpm", None),
        (".hidden/ok", None),
        ("a/..b/c..", None),
        ("", "empty path"),
        ("/etc/passwd", "absolute path"),
        ("../x", "path leaves the bundle ('..')"),
        ("a/../../x", "path leaves the bundle ('..')"),
        ("a/..", "path leaves the bundle ('..')"),
        ("a//b", "empty or '.' path segment"),
        ("a/./b", "empty or '.' path segment"),
        ("a/", "empty or '.' path segment"),
        ("a\\..\\b", "backslash in path"),
        ("a\nb", "control character in path"),
        ("a\x00b", "control character in path"),
        ("x" * 256, "path segment longer than 255 bytes"),
        ("a/" * 2100 + "b", "path longer than 4096 characters"),
    ],
)
def test_path_problem(path, problem):
    assert path_problem(path) == problem


@pytest.mark.parametrize("name, normalized", [("./a/b", "a/b"), ("././a", "a"), ("a/", "a"), (".", ""), ("a", "a")])
def test_normalize_member_name(name, normalized):
    assert normalize_member_name(name) == normalized


def test_regular_files_and_directories_pass():
    members = [
        Member("./", "dir"),
        Member("manifest.json", "file", 10),
        Member("repos/", "dir"),
        Member("repos/p", "dir"),
        Member("repos/p/x.rpm", "file", 5),
    ]
    accepted, problems = member_problems(members, ReadLimits())
    assert problems == []
    assert [m.name for m in accepted] == ["manifest.json", "repos", "repos/p", "repos/p/x.rpm"]


@pytest.mark.parametrize(
    "member, problem",
    [
        (Member("../evil", "file", 1), "../evil: path leaves the bundle ('..')"),
        (Member("/etc/cron.d/evil", "file", 1), "/etc/cron.d/evil: absolute path"),
        (Member("l", "symlink", 0, "/etc/passwd"), f"l: is a symbolic link to /etc/passwd; {ONLY}"),
        (Member("h", "hardlink", 0, "/etc/shadow"), f"h: is a hard link to /etc/shadow; {ONLY}"),
        (Member("c", "chrdev"), f"c: is a character device; {ONLY}"),
        (Member("b", "blkdev"), f"b: is a block device; {ONLY}"),
        (Member("f", "fifo"), f"f: is a FIFO (named pipe); {ONLY}"),
        (Member("s", "socket"), f"s: is a socket; {ONLY}"),
        (Member("o", "other"), f"o: unsupported entry type; {ONLY}"),
        (Member("n", "file", problem="unusable Rock Ridge name '..'"), "n: unusable Rock Ridge name '..'"),
        (Member("bad\x1b[31mname", "file", 1), "bad\\x1b[31mname: control character in path"),
    ],
)
def test_each_unsafe_member(member, problem):
    accepted, problems = member_problems([Member("ok", "file", 1), member], ReadLimits())
    assert problems == [problem]
    assert member.name not in [m.name for m in accepted]


def test_all_problems_together_duplicates_and_files_used_as_directories():
    members = [
        Member("a", "file", 1),
        Member("a/b", "file", 1),
        Member("x", "file", 1),
        Member("./x", "file", 1),
        Member("../y", "file", 1),
        Member("l", "symlink", 0, "/"),
    ]
    _, problems = member_problems(members, ReadLimits())
    assert problems == [
        "../y: path leaves the bundle ('..')",
        f"l: is a symbolic link to /; {ONLY}",
        "x: appears 2 times",
        "a/b: inside a, which is a file",
    ]


def test_limits():
    limits = ReadLimits(max_file_bytes=10, max_total_bytes=15, max_depth=3)
    members = [Member("a", "file", 11), Member("b", "file", 9), Member("c/d/e/f", "file", 0)]
    _, problems = member_problems(members, limits)
    assert problems == [
        "a: 11 bytes is over the limit of 10 bytes for one file",
        "c/d/e/f: more than 3 levels deep",
        "(bundle): 20 bytes in all is over the limit of 15 bytes",
    ]


def test_entry_limit_stops_reading():
    def endless():
        i = 0
        while True:
            i += 1
            yield Member(f"f{i}", "file", 1)

    _, problems = member_problems(endless(), ReadLimits(max_entries=100))
    assert problems == ["(bundle): more than 100 entries; refusing to read further"]


def test_capped():
    assert capped(["a", "b"], 5) == ["a", "b"]
    assert capped([str(i) for i in range(10)], 3) == ["0", "1", "2", "... and 7 more problems"]


def _manifest(**changes):
    d = {
        "products": [{"label": "p", "name": "P", "redhat": False, "content_id": None}],
        "repositories": [
            {
                "label": "r",
                "name": "R",
                "product": "p",
                "path": "repos/p/r",
                "content_type": "yum",
                "target": {"version": 1, "package_count": 2, "package_set_digest": "sha256:" + "0" * 64},
                "base": None,
                "added": 2,
                "removed": [],
            }
        ],
        "files": [
            {"path": "products.csv", "sha256": "0" * 64, "size": 1},
            {"path": "repos/p/r/Packages/a.rpm", "sha256": "0" * 64, "size": 1},
        ],
    }
    d.update(changes)
    return d


def test_consistent_manifest():
    assert manifest_consistency_problems(_manifest()) == []


def test_inconsistent_manifest():
    d = _manifest()
    d["products"].append(dict(d["products"][0]))
    d["repositories"].append({**d["repositories"][0], "product": "q", "path": "repos/p/r", "added": 5})
    d["files"] += [
        {"path": "products.csv", "sha256": "1" * 64, "size": 1},
        {"path": "stray.txt", "sha256": "0" * 64, "size": 1},
        {"path": "repos/p/r/Packages/a.rpm/inner", "sha256": "0" * 64, "size": 1},
    ]
    assert manifest_consistency_problems(d) == [
        "products: 'p' is listed 2 times",
        "repositories/1: product 'q' is not in products",
        "repositories/1: path is 'repos/p/r', expected 'repos/q/r'",
        "repositories/1: adds 5 packages but the target holds 2",
        "files: 'products.csv' is listed 2 times",
        "files: 'repos/p/r/Packages/a.rpm/inner' is inside 'repos/p/r/Packages/a.rpm', which is also listed as a file",
        "files: 'stray.txt' is neither products.csv nor inside a listed repository",
    ]


PATH_CASES = [
    "products.csv",
    "repos/p/r/Packages/b/bash-5.1-1.el9+x~y^z.x86_64.rpm",
    ".hidden/ok",
    "a/..b/c..",
    "",
    "/etc/passwd",
    "../x",
    "a/../../x",
    "a/..",
    "a//b",
    "a/./b",
    "a/",
    "./a",
    ".",
    "..",
    "a\\b",
    "a\nb",
    "a\n",
    "a\x00b",
    "a\x7fb",
    "x" * 255,
    "x" * 256,
]


@pytest.mark.parametrize("path", PATH_CASES)
def test_path_rules_agree_with_the_manifest_schema(path):
    import re

    import schemas

    pattern = schemas.load("bundle/manifest.v1.json")["$defs"]["path"]["pattern"]
    assert (re.search(pattern, path) is not None) == (path_problem(path) is None)


def test_file_entry_problems():
    from iss_plugin.adapters.bundles.checks import file_entry_problems

    good = {"path": "products.csv", "sha256": "a" * 64, "size": 0}
    assert file_entry_problems([good]) == []
    assert file_entry_problems(
        [
            {"path": "../x", "sha256": "A" * 64, "size": True},
            {"path": "manifest.json", "sha256": "a" * 64, "size": 1},
            {"path": "x", "sha256": "a" * 64},
        ]
    ) == [
        "files/0/path: '../x': path leaves the bundle ('..')",
        "files/0/sha256: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' is not 64 lowercase hex digits",
        "files/0/size: True is not a non-negative integer",
        "files/1/path: 'manifest.json': reserved name",
        "files/2: has keys ['path', 'sha256'], expected path, sha256 and size",
    ]


SCREEN_PATHS = [
    *PATH_CASES,
    "a/b.rpm",
    "x/" + "y" * 63,
    "x/" + "y" * 64,
    "é/ok",
    "a/.b",
    "manifest.json",
    "repos/p/r/" + "d" * 300,
    "a/b\\",
    "\ta",
    "a/" * 2047 + "b",
    "a/" * 2048 + "b",
]


@pytest.mark.parametrize("bad", [*SCREEN_PATHS, None, 7])
def test_the_bulk_file_screen_never_passes_what_the_item_check_refuses(bad):
    """file_entry_problems screens all items at once and checks item by item only on suspicion:
    whatever one odd item does, the result is the item-by-item one."""
    from iss_plugin.adapters.bundles.checks import _file_entry_problems_each, file_entry_problems, file_value_problems
    from iss_plugin.domain.manifest import FileEntry

    good = [{"path": f"repos/p/r/Packages/{i}.rpm", "sha256": f"{i:064x}", "size": i} for i in range(50)]
    variants = [
        {"path": bad, "sha256": "a" * 64, "size": 1},
        {"path": "ok", "sha256": bad, "size": 1},
        {"path": "ok", "sha256": "a" * 64, "size": bad},
        {"path": "ok", "sha256": "a" * 64},
    ]
    for odd in variants:
        files = [*good[:20], odd, *good[20:]]
        assert file_entry_problems(files) == _file_entry_problems_each(files)
        if len(odd) == 3:  # the writer's own values, screened as columns: the same answer
            values = [FileEntry(f["path"], f["sha256"], f["size"]) for f in files]
            assert file_value_problems(values) == _file_entry_problems_each(files)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["products.csv"],
        ["repos/p/r/Packages/a.rpm/inner"],
        ["stray.txt"],
        ["repos/p/r2/x"],
        ["repos/p/r"],
        ["repos/p/r/Packages"],
    ],
)
def test_the_bulk_consistency_screen_gives_the_path_by_path_answer(extra):
    from iss_plugin.adapters.bundles.checks import _file_consistency_problems_each

    d = _manifest()
    d["files"] += [{"path": p, "sha256": "0" * 64, "size": 1} for p in extra]
    expected = _file_consistency_problems_each([f["path"] for f in d["files"]], ["repos/p/r/"])
    assert manifest_consistency_problems(d) == expected
    assert manifest_consistency_problems({**d, "files": []}, [f["path"] for f in d["files"]]) == expected
    assert (expected == []) == (extra == [])
