import pytest

from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.packages import Package, package_set_digest
from iss_plugin.domain.planning import plan_repository_export, target_after_import
from iss_plugin.domain.versions import VersionNumber


def pkg(name: str, sha: str) -> Package:
    return Package(name, "0", "1.0", "1", "noarch", sha * 64, 100, f"Packages/{name[0]}/{name}-1.0-1.noarch.rpm")


A, B, C, D = pkg("a", "a"), pkg("b", "b"), pkg("c", "c"), pkg("d", "d")


def test_full_plan_carries_every_package():
    plan = plan_repository_export("p", "r", 1, [A, B])
    assert plan.kind == "full" and plan.base is None
    assert [p.name for p in plan.new_packages] == ["a", "b"]


def test_incremental_plan_carries_only_new_packages_and_lists_removals():
    plan = plan_repository_export("p", "r", 3, [A, C, D], base_version=2, base=[A, B])
    assert plan.kind == "incremental"
    assert [p.name for p in plan.new_packages] == ["c", "d"]
    assert plan.removed == ("b" * 64,)
    assert plan.target.package_count == 3 and plan.base.package_count == 2


def test_applying_the_plan_to_its_base_gives_the_target_digest():
    plan = plan_repository_export("p", "r", 3, [A, C, D], base_version=2, base=[A, B])
    result = target_after_import([A, B], plan.new_packages, plan.removed)
    assert package_set_digest(p.sha256 for p in result) == plan.target.package_set_digest


def test_digest_ignores_order_and_case():
    assert package_set_digest(["AB", "cd"]) == package_set_digest(["cd", "ab"])
    assert package_set_digest([]) != package_set_digest(["ab"])


def test_nevra_hides_zero_epoch():
    assert A.nevra == "a-1.0-1.noarch"
    assert Package("x", "2", "1", "1", "x86_64", "e" * 64, 1, "x").nevra == "x-2:1-1.x86_64"


def test_version_numbers_parse_and_order():
    assert VersionNumber.parse("2.10") > VersionNumber.parse("2.9")
    with pytest.raises(UsageError, match="MAJOR.MINOR"):
        VersionNumber.parse("2")


def test_an_inconsistent_plan_is_a_permanent_iss_error():
    from iss_plugin.adapters.bus import policy
    from iss_plugin.domain.errors import InconsistentPlan, IssError
    from iss_plugin.domain.planning import plan_from_changes, version_ref

    base, target = version_ref(1, [A, B]), version_ref(2, [A, B, C])
    with pytest.raises(InconsistentPlan, match="p/r: base 2 \\+ 2 - 0 is not the target's 3 packages") as e:
        plan_from_changes("p", "r", target, base, [C, D], [])
    assert isinstance(e.value, IssError) and not isinstance(e.value, ValueError) and e.value.transient is False
    with pytest.raises(InconsistentPlan, match="a full export removes nothing"):
        plan_from_changes("p", "r", target, None, [A, B, C], ["b" * 64])
    decision = policy.on_error(e.value, 1, retry_delays_ms=(1000,), max_attempts=5)
    assert decision.action is policy.Action.PARK and decision.reason == "inconsistent_plan"
    assert plan_from_changes("p", "r", target, base, [C], []).new_packages == (C,)
