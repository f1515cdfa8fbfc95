"""The same metadata units on both backends: a version synced from one upstream tree has the same
units and the same version digest in the local store and in Pulp, and a tree exported by either
imports into the other with the digest the source promised (issue 10, point 2)."""

from __future__ import annotations

import uuid

import pytest

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.fixtures import file_sha256
from iss_plugin.domain.packages import package_set_digest
from tests.contract.conftest import local_server
from tests.contract.test_metadata_units import upstream
from tests.integration.pulp.support import pulp_backend

pytestmark = pytest.mark.pulp


@pytest.fixture
def rpms(tmp_path):
    from iss_plugin.adapters.fixtures import build_rpms

    return lambda count, prefix="pkg", **kw: build_rpms(tmp_path / "rpms" / prefix, count, prefix=prefix, **kw)


def test_units_and_digests_agree_between_local_and_pulp_both_ways(tmp_path, rpms):
    key = f"ACME/tools/cross-{uuid.uuid4().hex[:8]}"
    tree, files = upstream(tmp_path, rpms)
    with local_server(tmp_path, "local") as local, pulp_backend(1) as pulp:
        local.backend.ensure_repository(key)
        lv = local.backend.sync(key, tree.as_uri())
        local.commit()
        pulp.ensure_repository(key)
        pv = pulp.sync(key, tree.as_uri())
        assert pulp.list_units(key, pv) == local.backend.list_units(key, lv)
        info = local.backend.version_info(key, lv)
        assert pulp.version_info(key, pv).digest == info.digest
        assert info.digest != package_set_digest(file_sha256(f) for f in files)  # units counted

        # local -> Pulp: a new Pulp repository imports the local export with the local digest
        local.backend.export_version(key, lv, None, tmp_path / "from-local")
        other = key + "x"
        pulp.ensure_repository(other)
        got = pulp.import_tree(other, tmp_path / "from-local", ImportExpectation(None, (), info.digest, len(files)))
        assert pulp.version_info(other, got).digest == info.digest

        # Pulp -> local: the Pulp export imports into a new local repository with Pulp's digest
        pulp.export_version(key, pv, None, tmp_path / "from-pulp")
        local.backend.ensure_repository(other)
        back = local.backend.import_tree(
            other, tmp_path / "from-pulp", ImportExpectation(None, (), info.digest, len(files))
        )
        local.commit()
        assert local.backend.list_units(other, back) == pulp.list_units(key, pv)


def test_a_package_only_incremental_into_a_repository_with_units_is_one_modify_and_keeps_them(
    tmp_path, rpms, pulp1, pulp2
):
    key = f"ACME/tools/incr-{uuid.uuid4().hex[:8]}"
    tree, _ = upstream(tmp_path, rpms)
    pulp1.ensure_repository(key)
    v1 = pulp1.sync(key, tree.as_uri())
    i1 = pulp1.version_info(key, v1)
    pulp1.export_version(key, v1, None, tmp_path / "full")
    pulp2.ensure_repository(key)
    base = pulp2.import_tree(key, tmp_path / "full", ImportExpectation(None, (), i1.digest, i1.package_count))
    v2 = pulp1.add_packages(key, rpms(2, prefix="later"))
    i2 = pulp1.version_info(key, v2)
    assert pulp1.list_units(key, v2) == pulp1.list_units(key, v1)
    pulp1.export_version(key, v2, v1, tmp_path / "incr")
    syncs_before = sum("syncing" in doing for doing, _, _ in pulp2.pulp.task_log)
    got = pulp2.import_tree(key, tmp_path / "incr", ImportExpectation(base, (), i2.digest, i2.package_count))
    tasks = [doing for doing, _, _ in pulp2.pulp.task_log]
    assert sum("syncing" in doing for doing in tasks) == syncs_before  # no mirror sync
    assert any("(+2 -0)" in doing for doing in tasks)
    assert pulp2.version_info(key, got).digest == i2.digest
    assert pulp2.list_units(key, got) == pulp1.list_units(key, v2)
