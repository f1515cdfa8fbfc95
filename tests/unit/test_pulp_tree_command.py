"""A streamed batch's yum tree written by the createrepo_c command (adapters/backends/pulp/tree.py),
without Pulp: a command that cannot start, fails, is killed or runs too long is a BackendError that
says what, where and what to do, and leaves no tree; a file that is not an RPM is that file's
problem, in createrepo_c's words, with the real command (0.x on PATH, 1.x beside this Python)."""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from iss_plugin.adapters.backends.pulp.tree import (
    CREATEREPO_TIMEOUT,
    CommandNotStarted,
    write_repo_around_in_child,
)
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BackendError

WHAT = "the stream's batch for 'acme/tools/utils'"


@pytest.fixture
def rpms(tmp_path: Path) -> list[Path]:
    return build_rpms(tmp_path / "in", 3, prefix="t-")


def script(tmp_path: Path, body: str, name: str = "createrepo_c") -> str:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def real_commands() -> list[str]:
    found = [shutil.which("createrepo_c"), shutil.which("createrepo_c", path=str(Path(sys.executable).parent))]
    return sorted({c for c in found if c})


def assert_untouched(root: Path, rpms: list[Path]) -> None:
    assert not root.exists()  # no partial tree (links, repodata, createrepo_c's .repodata/)
    assert all(p.is_file() for p in rpms)  # the caller's files are still there


def test_the_production_timeout_is_kept():
    default = inspect.signature(write_repo_around_in_child).parameters["timeout"].default
    assert default == CREATEREPO_TIMEOUT == 600


def test_a_command_that_does_not_exist_is_a_clear_error_and_no_tree(tmp_path, rpms):
    root, gone = tmp_path / "stage" / "tree", str(tmp_path / "nowhere" / "createrepo_c")
    with pytest.raises(CommandNotStarted) as e:
        write_repo_around_in_child(root, rpms, gone, what=WHAT)
    assert isinstance(e.value, BackendError) and not e.value.transient
    text = e.value.message
    assert f"cannot start the createrepo_c command {gone}" in text
    assert WHAT in text and rpms[0].name in text and "3 package files" in text  # which batch
    assert str(root.parent) in text  # where
    assert "No such file" in text and "Install createrepo_c" in text  # why, what to do
    assert e.value.details["command"] == gone
    assert_untouched(root, rpms)


@pytest.mark.parametrize(
    "body",
    ["not a program\n", "#!/nowhere/sh\nexit 0\n"],
    ids=["not-a-program", "interpreter-missing"],
)
def test_a_command_that_is_there_but_cannot_start_is_a_clear_error(tmp_path, rpms, body):
    root, command = tmp_path / "stage" / "tree", script(tmp_path, body)
    with pytest.raises(CommandNotStarted, match="cannot start the createrepo_c command") as e:
        write_repo_around_in_child(root, rpms, command, what=WHAT)
    assert command in e.value.message and "Install createrepo_c" in e.value.message
    assert_untouched(root, rpms)


def test_a_command_that_exits_non_zero_names_its_exit_code_and_stderr_tail(tmp_path, rpms):
    root = tmp_path / "stage" / "tree"
    noisy = "echo 'early noise' >&2\n" + "echo 'x' >&2\n" * 2000
    command = script(tmp_path, f"#!/bin/sh\n{noisy}echo 'cannot write: No space left on device' >&2\nexit 3\n")
    with pytest.raises(BackendError) as e:
        write_repo_around_in_child(root, rpms, command, what=WHAT)
    assert not isinstance(e.value, CommandNotStarted) and not e.value.transient
    text = e.value.message
    assert f"the createrepo_c command {command} failed (exit 3)" in text
    assert WHAT in text and rpms[-1].name in text and str(root.parent) in text
    assert "No space left on device" in text and "early noise" not in text  # the tail only
    assert "then pull again" in text
    assert e.value.details["exit_code"] == 3
    assert_untouched(root, rpms)


def test_a_command_killed_by_a_signal_says_so(tmp_path, rpms):
    root, command = tmp_path / "stage" / "tree", script(tmp_path, "#!/bin/sh\nkill -9 $$\n")
    with pytest.raises(BackendError, match="was killed by signal 9") as e:
        write_repo_around_in_child(root, rpms, command, what=WHAT)
    assert e.value.details["exit_code"] == -9
    assert_untouched(root, rpms)


def test_a_command_that_runs_past_the_timeout_is_stopped_with_a_clear_error(tmp_path, rpms):
    root, pid_file = tmp_path / "stage" / "tree", tmp_path / "pid"
    command = script(tmp_path, f"#!/bin/sh\necho 'reading packages' >&2\necho $$ > {pid_file}\nexec sleep 60\n")
    started = time.monotonic()
    with pytest.raises(BackendError) as e:
        write_repo_around_in_child(root, rpms, command, what=WHAT, timeout=0.5)
    assert time.monotonic() - started < 10
    text = e.value.message
    assert f"the createrepo_c command {command} did not finish" in text and "within 0.5 s" in text
    assert WHAT in text and "reading packages" in text and "then pull again" in text
    assert e.value.details["timeout_seconds"] == 0.5 and not e.value.transient
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)
    assert_untouched(root, rpms)


@pytest.mark.parametrize("command", real_commands())
def test_the_real_command_names_a_file_that_is_not_an_rpm_in_its_own_words(tmp_path, rpms, command):
    """createrepo_c 0.17 (Debian's) leaves such a file out and exits 0; 1.x (pip's) exits 2: the same problem."""
    bad = tmp_path / "in" / "broken-1.0-1.noarch.rpm"
    bad.write_bytes(b"not an rpm, though the signed manifest has its sha256" * 50)
    cut = tmp_path / "in" / "cut-1.0-1.noarch.rpm"
    cut.write_bytes(rpms[0].read_bytes()[:1000])  # a truncated header
    root = tmp_path / "stage" / "tree"
    problems = write_repo_around_in_child(root, [*rpms, bad, cut], command, what=WHAT)
    assert len(problems) == 2, problems
    by_file = dict(p.split(": ", 1) for p in problems)
    assert set(by_file) == {bad.name, cut.name}
    for said in by_file.values():
        assert "could not take it as an RPM package" in said and "signed manifest" in said and "rpm -K" in said
        assert "Cannot read package" in said  # createrepo_c's reason, not an empty tail


@pytest.mark.parametrize("command", real_commands())
def test_the_real_command_writes_the_tree_of_good_packages(tmp_path, rpms, command):
    root = tmp_path / "stage" / "tree"
    assert write_repo_around_in_child(root, rpms, command, what=WHAT) == []
    assert (root / "repodata" / "repomd.xml").is_file()


def test_there_is_a_real_command_to_test_with():
    assert real_commands(), "createrepo_c is not installed: run scripts/install-test-deps.sh"
