"""Extracting a bundle into a work directory that cannot take a file: a BackendError naming the
errno's words, the path and what to do (answered as destination_error, never as a bad bundle), and
nothing half-extracted left behind.

The fault is real: the reader runs in a child process whose file size limit (RLIMIT_FSIZE, SIGXFSZ
ignored) is below the bundle's package files, so writing the first of them fails with EFBIG after
the reader's up-front free-space check has passed."""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import signal
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.fetch import fetch_bundle
from iss_plugin.adapters.bundles.reader import open_bundle
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import BackendError
from tests.integration.full_disk import FILLER, mount_full_tmpfs, unmount

from .conftest import build


def _open_with_file_size_limit(path: str, work: str, limit: int, answer) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        with open_bundle(Path(path), Path(work)):
            answer.send(("opened", "", False, None))
    except BackendError as e:
        answer.send((type(e).__name__, e.message, e.transient, ev.rejection_reason(e)))
    except BaseException as e:  # what escaped instead: the test names it
        answer.send((type(e).__name__, str(e), None, None))


def open_in_child(path: Path, work: Path, limit: int) -> tuple:
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_open_with_file_size_limit, args=(str(path), str(work), limit, theirs))
    child.start()
    child.join(60)
    return ours.recv()


def test_a_file_too_large_for_the_work_dir_is_a_backend_error_and_leaves_nothing(sandbox, signer):
    output, _ = build(sandbox / "out", signer, fmt="tgz", package_size=3000)
    work = sandbox / "work"
    kind, message, transient, reason = open_in_child(output.path, work, limit=1000)
    assert (kind, transient, reason) == ("BackendError", False, "destination_error"), message
    assert message.startswith(f"extracting {output.path.name} under {work} failed: File too large (EFBIG) at {work}")
    assert "raise the file size limit of the iss process" in message
    assert list(work.iterdir()) == []  # the bundle-* directory is gone

    kind, message, *_ = open_in_child(output.path, work, limit=resource.RLIM_INFINITY)  # the limit lifted
    assert kind == "opened", message


@pytest.mark.parametrize("fmt", ["tgz", "dir"])
def test_fetching_a_bundle_onto_a_full_disk_is_a_backend_error(tmp_path, signer, fmt):
    """A file:// bundle on another file system is copied (no hard link across file systems); the
    import area is a real, full tmpfs. A directory bundle is copied by shutil.copytree, which would
    turn the OSError into a shutil.Error without an errno: it is said all the same."""
    output, _ = build(tmp_path / "out", signer, fmt=fmt)
    imports = tmp_path / "imports"
    try:
        mount_full_tmpfs(imports)
        into = imports / "incoming" / "b-1"
        with pytest.raises(BackendError) as raised:
            fetch_bundle(output.path.as_uri(), into, None)
        e = raised.value
        assert not e.transient and ev.rejection_reason(e) == "destination_error"
        assert e.message.startswith(f"fetching {output.path.as_uri()} into {into} failed: No space left on device")
        assert "then try again" in e.message and "free space under " in e.message

        (imports / FILLER).unlink()
        shutil.rmtree(into, ignore_errors=True)  # what on_bundle_ready does after any fetch
        assert fetch_bundle(output.path.as_uri(), into, None).exists()
    finally:
        unmount(imports)
