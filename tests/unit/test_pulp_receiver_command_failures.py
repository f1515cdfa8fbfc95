"""The streamed-batch receiver of a Pulp destination (adapters/backends/pulp/receive.py) when the
createrepo_c command fails, without Pulp: `Recorder` stands in for the backend's few calls the
receiver makes (what went in by a sync of a tree, what by uploads) and holds what they sent.

A command that fails makes the stream end with its BackendError (the batch's repository named),
nothing synced, no tree left in the shared import directory and no package file left; a command
gone since it was looked up is looked up again and, gone for good, the batches go in by uploads
(as on a machine without one); a file that is not an RPM refuses the stream naming the file."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import pytest

from iss_plugin.adapters.backends.pulp import tree
from iss_plugin.adapters.backends.pulp.receive import PulpPackageReceiver
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BackendError, BundleIntegrityError

REPO = "acme/tools/utils"
# the real command, found as the receiver finds it (before the tests below narrow where it looks)
REAL = shutil.which(
    "createrepo_c", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)


class Recorder:
    """The PulpContent calls PulpPackageReceiver makes, recorded; what was sent is then held."""

    def __init__(self, shared: Path) -> None:
        self.shared_import_dir: Path | None = shared
        self.bulk_upload = 2
        self.held: set[str] = set()
        self.synced: list[list[str]] = []  # the package file names of each synced tree
        self.uploaded: list[list[str]] = []

    def _content_by_sha(self, shas: list[str]) -> dict[str, str]:
        return {s: f"/content/{s}/" for s in shas if s in self.held}

    def incoming_name(self, repo: str) -> str:
        return f"{repo}#incoming"

    def _ensure_named(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "pulp_href": f"/repositories/{name}/", "latest_version_href": "/v/0/"}

    def _sync_from(self, r: dict[str, Any], url: str, *, mirror: bool, what: str) -> None:
        rpms = sorted(Path(urlparse(url).path).rglob("*.rpm"))
        assert (Path(urlparse(url).path) / "repodata" / "repomd.xml").is_file()
        self.synced.append([p.name for p in rpms])
        self.held |= {hashlib.sha256(p.read_bytes()).hexdigest() for p in rpms}

    def _upload(self, batch: list[tuple[str, Path]]) -> tuple[dict[str, str], list[str]]:
        self.uploaded.append([p.name for _sha, p in batch])
        self.held |= {sha for sha, _p in batch}
        return {sha: f"/content/{sha}/" for sha, _p in batch}, []

    def _modify(self, r: dict[str, Any], *, add: list[str], remove: list[str], doing: str) -> int:
        return 1


@pytest.fixture
def command_lookup(tmp_path, monkeypatch):
    """createrepo_c_command() looks only in tmp_path/bin (not beside this Python, not on PATH); its
    per-process memory is forgotten before and after."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python" / "python3"))
    monkeypatch.setenv("PATH", str(bin_dir))
    tree.createrepo_c_command.cache_clear()
    yield bin_dir
    tree.createrepo_c_command.cache_clear()


def install(bin_dir: Path, body: str) -> Path:
    command = bin_dir / "createrepo_c"
    command.write_text(body)
    command.chmod(0o755)
    assert tree.createrepo_c_command() == str(command)  # looked up (and remembered) as a stream would
    return command


def stream(tmp_path: Path, files: list[Path]) -> tuple[Recorder, Path, PulpPackageReceiver, list[Path]]:
    """A receiver for batches of two over `files` (copied, as a stream would write them); not held yet."""
    shared, incoming = tmp_path / "shared", tmp_path / "incoming"
    shared.mkdir()
    incoming.mkdir()
    backend = Recorder(shared)
    receiver = PulpPackageReceiver(cast(Any, backend), [], batch_files=2)
    copies = [Path(shutil.copy2(f, incoming / f.name)) for f in files]
    return backend, shared, receiver, copies


def put_all(receiver: PulpPackageReceiver, copies: list[Path]) -> None:
    for f in copies:
        receiver.put(REPO, f, hashlib.sha256(f.read_bytes()).hexdigest())
    receiver.hold()


def assert_nothing_left(shared: Path, copies: list[Path], being_put: Path | None = None) -> None:
    """No tree left for Pulp, no package file left in the work directory but the one being put when
    the error came out (the stream reader's still: it removes its directory on any error)."""
    assert os.listdir(shared) == []
    assert [f for f in copies if f.exists()] == ([being_put] if being_put else [])


def test_a_failing_command_ends_the_stream_with_its_error_and_nothing_synced(tmp_path, command_lookup):
    install(command_lookup, "#!/bin/sh\necho 'createrepo_c: out of memory' >&2\nexit 1\n")
    backend, shared, receiver, copies = stream(tmp_path, build_rpms(tmp_path / "rpms", 5, prefix="f-"))
    try:
        with pytest.raises(BackendError) as e:
            put_all(receiver, copies)
    finally:
        receiver.close()
    assert not isinstance(e.value, BundleIntegrityError) and not e.value.transient
    text = e.value.message
    assert "failed (exit 1)" in text and "out of memory" in text and f"the stream's batch for '{REPO}'" in text
    assert backend.synced == [] and backend.held == set()
    assert_nothing_left(shared, copies, being_put=copies[4])  # the first batch's error came out at its put


def test_a_command_that_is_there_but_cannot_start_ends_the_stream_with_no_uploads(tmp_path, command_lookup):
    install(command_lookup, "not a program\n")
    backend, shared, receiver, copies = stream(tmp_path, build_rpms(tmp_path / "rpms", 4, prefix="n-"))
    try:
        with pytest.raises(BackendError, match="cannot start the createrepo_c command") as e:
            put_all(receiver, copies)
    finally:
        receiver.close()
    assert "Install createrepo_c" in e.value.message and REPO in e.value.message
    assert backend.synced == [] and backend.uploaded == []  # a broken install is not hidden by uploads
    assert_nothing_left(shared, copies)


def test_a_command_gone_since_it_was_looked_up_means_uploads(tmp_path, command_lookup, caplog):
    command = install(command_lookup, "#!/bin/sh\nexit 0\n")
    command.unlink()  # removed while the process runs (its lookup is remembered)
    rpms = build_rpms(tmp_path / "rpms", 5, prefix="g-")
    backend, shared, receiver, copies = stream(tmp_path, rpms)
    with caplog.at_level(logging.WARNING, logger="iss_plugin.adapters.backends.pulp.receive"):
        try:
            put_all(receiver, copies)
        finally:
            receiver.close()
    assert backend.synced == []
    assert backend.uploaded == [[p.name for p in rpms[:2]], [p.name for p in rpms[2:4]], [rpms[4].name]]
    assert f"the createrepo_c command {command} could not be started" in caplog.text and "by uploads" in caplog.text
    assert tree.createrepo_c_command() is None
    assert_nothing_left(shared, copies)


def test_a_file_that_is_not_an_rpm_refuses_the_stream_naming_it(tmp_path, command_lookup):
    assert REAL, "createrepo_c is not installed: run scripts/install-test-deps.sh"
    install(command_lookup, f'#!/bin/sh\nexec {REAL} "$@"\n')
    rpms = build_rpms(tmp_path / "rpms", 3, prefix="b-")
    bad = tmp_path / "rpms" / "broken-1.0-1.noarch.rpm"
    bad.write_bytes(b"not an rpm" * 100)
    backend, shared, receiver, copies = stream(tmp_path, [rpms[0], bad, *rpms[1:]])
    try:
        with pytest.raises(BundleIntegrityError) as e:
            put_all(receiver, copies)
    finally:
        receiver.close()
    assert "could not go into Pulp; nothing was imported" in e.value.message
    assert [p.split(": ", 1)[0] for p in e.value.problems] == [bad.name]
    assert "Cannot read package" in e.value.problems[0] and "rpm -K" in e.value.problems[0]
    assert backend.synced == [[p.name for p in rpms[1:]]]  # the next batch went in; import refuses the stream
    assert_nothing_left(shared, copies)
