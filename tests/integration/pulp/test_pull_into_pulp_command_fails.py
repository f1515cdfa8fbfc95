"""A pull into a destination on Pulp (instance 2) whose `createrepo_c` command fails while it writes
a streamed batch's yum tree (adapters/backends/pulp/tree.py): the pull fails with the command's
BackendError (the command, the batch's repository, the exit code, its stderr, what to do), and
nothing changed: no repository version, the `#incoming` repositories as they were, nothing new in
the catalog, no file left in the import work directory or Pulp's shared import directory. Through
`iss content-import sync`, exit 1 and the message. The same pull with a working command then goes
through. The command is a script put where the receiver looks for it (in this process only)."""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path

import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG
from iss_plugin.adapters.backends.pulp import receive, tree
from iss_plugin.adapters.backends.pulp_instances import settings_toml
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BackendError
from iss_plugin.services import catalog
from tests.integration.propagation.conftest import ACTOR, pins, publish, versions
from tests.integration.pulp.support import require_instance
from tests.integration.pulp.test_pull_into_pulp import (  # noqa: F401  (fixtures)
    Proxy,
    incoming_packages,
    pull,
    pulp_pair,
    pulp_state,
    unique_rpms,
)

pytestmark = pytest.mark.pulp

FAILING = "#!/bin/sh\necho 'createrepo_c: Cannot open temporary file: No space left on device' >&2\nexit 1\n"
UTILS = f"{ORG}/{CUSTOM_PRODUCT}/utils"


@pytest.fixture
def failing_command(tmp_path, monkeypatch) -> str:
    """The receiver's createrepo_c: a script that fails as a whole (as on a full disk)."""
    command = tmp_path / "bin" / "createrepo_c"
    command.parent.mkdir()
    command.write_text(FAILING)
    command.chmod(0o755)
    monkeypatch.setattr(receive, "createrepo_c_command", cache(lambda: str(command)))
    return str(command)


def outside_pulp(dst) -> list[Path]:
    """The files in the import work directory, and the streamed batches' trees in Pulp's shared
    import directory (a failed pull must leave what it found)."""
    work = [p for p in Path(dst.settings.imports_path).rglob("*") if p.is_file()]
    return sorted(work) + sorted(Path(require_instance(2).import_dir).glob("iss-stream-*"))


def catalog_state(dst) -> list:
    return sorted(str(r) for r in catalog.list_repositories(dst.uow(), ORG))


@pytest.mark.parametrize("pulp_pair", [(3, 2)], indirect=True, ids=["batches-of-2"])
def test_a_failing_createrepo_c_fails_the_pull_and_changes_nothing(pulp_pair, tmp_path, failing_command, monkeypatch):  # noqa: F811
    src, dst, url = pulp_pair
    work_dir = Path(dst.settings.imports_path)
    before_catalog, before_files = catalog_state(dst), outside_pulp(dst)
    with pytest.raises(BackendError) as e:
        pull(dst, url, Proxy(work_dir))
    text = e.value.message
    assert f"the createrepo_c command {failing_command} failed (exit 1)" in text
    assert "the stream's batch for '" in text and "No space left on device" in text and "then pull again" in text
    assert not e.value.transient
    assert versions(dst) == [] and pulp_state(dst) == {} and catalog_state(dst) == before_catalog
    assert outside_pulp(dst) == before_files

    monkeypatch.setattr(receive, "createrepo_c_command", tree.createrepo_c_command)  # the machine's again
    assert pull(dst, url, Proxy(work_dir))["state"] == "imported"
    assert versions(dst) == ["1.0"] and pins(dst, "1.0") == pins(src, "1.0")
    state, incoming = pulp_state(dst), incoming_packages(dst, UTILS)
    assert len(incoming) == 3

    # packages Pulp never saw (it keeps earlier runs' as orphans and would not take them again):
    # a batch of two, which the command writes, and one uploaded
    late = build_rpms(tmp_path / "late", 3, prefix=f"late-{uuid.uuid4().hex[:8]}-")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", late, ACTOR, src.server_id)
    publish(src)
    monkeypatch.setattr(receive, "createrepo_c_command", cache(lambda: failing_command))
    before_catalog, before_files = catalog_state(dst), outside_pulp(dst)
    with pytest.raises(BackendError, match=r"failed \(exit 1\)") as e:
        pull(dst, url, Proxy(work_dir))
    assert f"'{UTILS}'" in e.value.message and late[0].name in e.value.message
    assert versions(dst) == ["1.0"] and pulp_state(dst) == state and catalog_state(dst) == before_catalog
    assert incoming_packages(dst, UTILS) == incoming  # the failed batch's #incoming was not touched
    assert outside_pulp(dst) == before_files

    monkeypatch.setattr(receive, "createrepo_c_command", tree.createrepo_c_command)
    assert pull(dst, url, Proxy(work_dir))["state"] == "imported"
    assert versions(dst) == ["1.0", "2.0"] and pins(dst, "2.0") == pins(src, "2.0")


@pytest.mark.parametrize("pulp_pair", [(3, 2)], indirect=True, ids=["cli"])
def test_iss_content_import_sync_exits_1_with_the_command_s_error(pulp_pair, tmp_path, failing_command):  # noqa: F811
    from click.testing import CliRunner

    from iss_plugin.cli.main import build_cli

    _src, dst, url = pulp_pair
    before_files = outside_pulp(dst)
    config = tmp_path / "destination.toml"
    config.write_text(
        f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n'
        + settings_toml(require_instance(2), dst.settings.pulp.repo_prefix)
        + "stream_batch = 2\n"  # in [pulp]: batches of two, written by the command
    )
    sync = ["content-import", "sync", "--from", url, "--organization", ORG, "--content-view", "base"]
    text = CliRunner().invoke(build_cli(), ["--config", str(config), *sync])
    assert text.exit_code == 1, text.output
    assert f"the createrepo_c command {failing_command} failed (exit 1)" in text.output
    assert "No space left on device" in text.output

    as_json = CliRunner().invoke(build_cli(), ["--config", str(config), "--output", "json", *sync])
    assert as_json.exit_code == 1, as_json.output
    answer = json.loads(as_json.stdout)
    assert answer["error"] == "BackendError" and answer["reason"] == "destination_error"  # as a source is told
    assert answer["details"]["exit_code"] == 1
    assert versions(dst) == [] and pulp_state(dst) == {} and outside_pulp(dst) == before_files
