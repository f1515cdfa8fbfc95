"""Metadata units as values and their rules (domain.content_units, domain.content_unit_rules), and
the yum reader/writer of updateinfo, comps and modules (pure: bytes in, units out)."""

from __future__ import annotations

import pytest

from iss_plugin.adapters.content_types.yum_units import (
    comps_xml,
    modules_yaml,
    parse_comps,
    parse_modules,
    parse_updateinfo,
    sniff_metadata,
    updateinfo_xml,
)
from iss_plugin.adapters.fixture_metadata import FixtureGroup, FixtureModule, advisory
from iss_plugin.adapters.fixture_metadata import comps_xml as fixture_comps
from iss_plugin.adapters.fixture_metadata import modules_yaml as fixture_modules
from iss_plugin.adapters.fixture_metadata import updateinfo_xml as fixture_updateinfo
from iss_plugin.domain.content_unit_rules import (
    advisories_missing_packages,
    dropped_advisories,
    duplicate_key_problems,
    refuse_dropped_advisories,
    refuse_duplicate_keys,
    short_nevra,
)
from iss_plugin.domain.content_units import (
    ADVISORY,
    GROUP,
    MODULEMD,
    MODULEMD_DEFAULTS,
    make_unit,
    replace_by_key,
    unit_summary,
    units_digest,
    version_digest,
)
from iss_plugin.domain.errors import ImportRuleViolation, RejectedInput
from iss_plugin.domain.packages import package_set_digest

A1 = make_unit(ADVISORY, "ISS-1", "<update>one</update>", ["foo-1.0-1.noarch"])
A1_CHANGED = make_unit(ADVISORY, "ISS-1", "<update>one, changed</update>", ["foo-1.0-1.noarch"])
A2 = make_unit(ADVISORY, "ISS-2", "<update>two</update>", ["bar-2:1.0-1.noarch", "gone-1.0-1.noarch"])
G1 = make_unit(GROUP, "ISS-1", "<group>same id, other kind</group>")


# --- digests -----------------------------------------------------------------------------------


def test_a_version_without_units_keeps_its_package_digest():
    packages = package_set_digest(["ab" * 32])
    assert units_digest([]) is None
    assert version_digest(packages, None) == packages


def test_units_change_the_version_digest_whatever_their_order():
    packages = package_set_digest(["ab" * 32])
    one = version_digest(packages, units_digest([A1.digest, A2.digest]))
    assert one == version_digest(packages, units_digest([A2.digest, A1.digest, A1.digest]))
    assert one != packages
    assert one != version_digest(packages, units_digest([A1_CHANGED.digest, A2.digest]))


def test_the_unit_digest_covers_kind_and_content():
    assert A1.digest != A1_CHANGED.digest
    assert make_unit(GROUP, "x", "<b/>").digest != make_unit(ADVISORY, "x", "<b/>").digest


def test_unit_summary_counts_the_target_and_what_the_base_lacks():
    summary = unit_summary([A1, A2, G1], [A1])
    assert summary is not None
    assert (summary.counts, summary.added) == ({ADVISORY: 2, GROUP: 1}, {ADVISORY: 1, GROUP: 1})
    assert summary.digest == units_digest([A1.digest, A2.digest, G1.digest])
    assert unit_summary([], None) is None


def test_replace_by_key_lets_the_remote_win_for_the_ids_it_lists():
    assert replace_by_key([A1, A2, G1], [A1_CHANGED]) == [A2, G1, A1_CHANGED]


# --- rules ----------------------------------------------------------------------------------------


def test_one_advisory_id_with_two_contents_is_refused_naming_both_digests():
    assert duplicate_key_problems([A1, A2, A1, G1]) == []  # the same unit twice, and another kind: fine
    [problem] = duplicate_key_problems([A1, A2, A1_CHANGED])
    assert problem == f"advisory ISS-1: {A1.digest} and {A1_CHANGED.digest}"
    with pytest.raises(RejectedInput, match="repository 'x': 1 ids name two different units") as e:
        refuse_duplicate_keys([A1, A1_CHANGED], "repository 'x'")
    assert e.value.exit_code == 3 and e.value.problems == [problem]


def test_an_advisory_the_destination_holds_may_not_be_dropped():
    assert dropped_advisories([A1, A2, G1], [A1_CHANGED, A2]) == []  # same id, new content: kept
    assert dropped_advisories([A1, A2, G1], [A2]) == ["ISS-1"]
    assert dropped_advisories([G1], []) == []  # only advisories count
    refuse_dropped_advisories([])
    with pytest.raises(ImportRuleViolation, match="1 advisories the destination holds would be dropped"):
        refuse_dropped_advisories(["x: ISS-1"])


def test_advisories_naming_packages_the_version_lacks_are_reported():
    held = ["foo-0:1.0-1.noarch", "bar-2:1.0-1.noarch"]
    assert advisories_missing_packages([A1, A2, G1], held) == [
        "advisory ISS-2 names packages the version does not hold: gone-1.0-1.noarch"
    ]
    assert advisories_missing_packages([A1], ["foo-1.0-1.noarch"]) == []
    assert short_nevra("foo-0:1.0-1.noarch") == "foo-1.0-1.noarch"
    assert short_nevra("foo-bar-2:1.0-1.x86_64") == "foo-bar-2:1.0-1.x86_64"


# --- the yum reader and writer -------------------------------------------------------------------


def test_updateinfo_written_by_createrepo_c_reads_into_advisories_and_back_unchanged():
    data = fixture_updateinfo([advisory("ISS-2026:0001", ["foo-1.0-1.noarch.rpm"]), advisory("ISS-2026:0002", [])])
    assert sniff_metadata(data) == "updateinfo"
    units = parse_updateinfo(data, "updateinfo.xml")
    assert [(u.kind, u.key, u.packages) for u in units] == [
        (ADVISORY, "ISS-2026:0001", ("foo-1.0-1.noarch",)),
        (ADVISORY, "ISS-2026:0002", ()),
    ]
    assert "<reference" in units[0].body
    written = updateinfo_xml(units)
    assert written is not None
    assert parse_updateinfo(written, "again") == units  # canonical: the same digests on every server


def test_comps_and_modules_read_into_units_and_back_unchanged():
    comps = fixture_comps([FixtureGroup("g1", ("a", "b")), FixtureGroup("g2", ("c",))], category="cat")
    units = parse_comps(comps, "comps.xml")
    assert [(u.kind, u.key) for u in units] == [(GROUP, "g1"), (GROUP, "g2"), ("category", "cat")]
    assert parse_comps(comps_xml(units) or b"", "again") == sorted(units, key=lambda u: (u.kind != GROUP, u.key))
    modules = fixture_modules([FixtureModule("m", "1.10", ("m-1.0-1.noarch.rpm",))])
    assert sniff_metadata(modules) == "modules"
    units = parse_modules(modules, "modules.yaml")
    assert [(u.kind, u.key) for u in units] == [(MODULEMD, "m:1.10:20260101:c0ffee42:noarch"), (MODULEMD_DEFAULTS, "m")]
    assert parse_modules(modules_yaml(units) or b"", "again") == units


@pytest.mark.parametrize(
    ("parse", "data", "message"),
    [
        (parse_updateinfo, b"<updates><update><title>x</title></update></updates>", "update 1: no <id>"),
        (parse_updateinfo, b"<comps/>", "the root element is <comps>"),
        (parse_updateinfo, b"<updates><update>", "not readable XML"),
        (
            parse_updateinfo,
            b'<!DOCTYPE u [<!ENTITY e "x">]><updates><update><id>&e;</id></update></updates>',
            "not readable XML",
        ),
        (parse_comps, b"<comps><blacklist/></comps>", "<blacklist> is not one of"),
        (parse_modules, b"document: modulemd\nversion: 2\ndata: {name: x}\n", "data lacks stream, version"),
        (parse_modules, b"document: something\nversion: 1\ndata: {}\n", "is not a modulemd document"),
        (parse_modules, b"[unclosed", "not readable YAML"),
    ],
)
def test_bad_metadata_files_are_refused_with_what_is_wrong(parse, data, message):
    with pytest.raises(RejectedInput) as e:
        parse(data, "the-file")
    assert message in str(e.value)
    assert "the-file" in str(e.value)


def test_canonical_bodies_survive_escapes_and_whitespace_unchanged():
    data = (
        b'<updates>\n  <update b="1" a="x\ty&quot;&lt;&#10;">\n    <id> A&amp;B </id>\n'
        b"    <description>line1\r\nline2 &#13; &gt;</description>tail<e/>\n  </update>\n</updates>"
    )
    [unit] = parse_updateinfo(data, "u")
    assert unit.key == "A&B"
    # a raw tab in an attribute is a space (XML), an escaped newline stays; attributes sorted
    assert unit.body.startswith('<update a="x y&quot;&lt;&#10;" b="1"><id>A&amp;B</id>')
    assert parse_updateinfo(updateinfo_xml([unit]) or b"", "again") == [unit]


def test_empty_elements_and_attributes_mean_none_as_pulp_writes_them():
    """Pulp republishes an advisory with <rights/>, <pushcount/>, <solution/> and src="", a category
    with an empty <description/>: the same unit as the upstream's, whose digest must not change."""
    upstream = (
        b'<updates><update from="x" type="security"><id>A</id><pkglist><collection short="s">'
        b'<package name="n" epoch="0" version="1" release="1" arch="noarch"><filename>n.rpm</filename>'
        b"</package></collection></pkglist></update></updates>"
    )
    pulp = (
        b'<updates><update from="x" type="security"><id>A</id><rights></rights><pushcount/><solution/>'
        b'<empty><inner/></empty><pkglist><collection short="s"><package name="n" epoch="0" version="1" '
        b'release="1" arch="noarch" src=""><filename>n.rpm</filename></package></collection></pkglist>'
        b"</update></updates>"
    )
    [a], [b] = parse_updateinfo(upstream, "upstream"), parse_updateinfo(pulp, "pulp")
    assert a == b and "rights" not in b.body and "src=" not in b.body
    with_text = pulp.replace(b"<pushcount/>", b"<pushcount>1</pushcount>")
    assert parse_updateinfo(with_text, "pushed")[0].digest != a.digest  # a value still counts
    category = b"<comps><category><id>c</id><name>c</name>%s</category></comps>"
    assert parse_comps(category % b"", "u") == parse_comps(category % b"<description></description>", "p")
    namespaced = b'<updates xmlns:x="urn:x"><update><id>A</id><rights/><x:e/></update></updates>'
    assert parse_updateinfo(namespaced, "ns")[0].body == "<update><id>A</id></update>"


# --- the manifest's optional units summary ----------------------------------------------------------


def _manifest_example() -> dict:
    import json

    import schemas

    return json.loads((schemas.ROOT / "examples" / "bundle" / "manifest.incremental.json").read_text())


def test_the_manifest_carries_an_optional_units_summary_and_stays_v1():
    import schemas
    from iss_plugin.domain.manifest import BundleManifest

    plain = _manifest_example()
    assert "units" not in BundleManifest.from_dict(plain).to_dict()["repositories"][0]  # absent when none
    data = _manifest_example()
    data["repositories"][0]["units"] = {
        "counts": {"advisory": 500, "group": 1},
        "added": {"advisory": 5},
        "digest": "sha256:" + "0" * 64,
    }
    assert schemas.problems("bundle/manifest.v1.json", data) == []
    assert BundleManifest.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    "units",
    [
        {"counts": {"advisory": -1}, "added": {}, "digest": "sha256:" + "0" * 64},
        {"counts": {"Advisory!": 1}, "added": {}, "digest": "sha256:" + "0" * 64},
        {"counts": {}, "added": {}, "digest": "md5:x"},
        {"counts": {}, "digest": "sha256:" + "0" * 64},
    ],
)
def test_a_bad_units_summary_fails_the_schema(units):
    import schemas

    data = _manifest_example()
    data["repositories"][0]["units"] = units
    assert schemas.problems("bundle/manifest.v1.json", data)


def test_other_modulemd_documents_are_kept_keyed_by_their_content():
    data = (
        b"---\ndocument: modulemd-obsoletes\nversion: 1\ndata:\n  module: m\n  stream: '1.0'\n"
        b"  modified: 2026-01-01T00:00Z\n  message: use 2.0\n...\n"
    )
    [unit] = parse_modules(data, "modules.yaml")
    assert unit.kind == "modulemd_other" and unit.key == unit.digest
    assert parse_modules(modules_yaml([unit]) or b"", "again") == [unit]
