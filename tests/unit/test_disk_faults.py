"""Which OSErrors are a disk that cannot take a write (a BackendError saying what, where and what
to do) and which stay what they are (a bug surfaces loudly)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from iss_plugin.adapters.disk_faults import disk_fault, disk_faults
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import BackendError

STORE, PUBLISHED = Path("/var/lib/iss/store"), Path("/var/lib/iss/published")


def test_a_write_without_a_path_names_the_first_area_and_what_to_do():
    fault = disk_fault(OSError(errno.ENOSPC, "No space left on device"), (STORE, PUBLISHED), "importing x")
    assert isinstance(fault, BackendError) and not fault.transient
    assert fault.message.startswith("importing x failed: No space left on device (ENOSPC) at /var/lib/iss/store;")
    assert "free space under /var/lib/iss/store" in fault.message
    assert ev.rejection_reason(fault) == ev.import_failure_reason(fault) == "destination_error"


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.EROFS, "remount the file system holding /var/lib/iss/published read-write"),
        (errno.EACCES, "make /var/lib/iss/published writable"),
        (errno.EDQUOT, "raise the iss user's disk quota"),
        (errno.EFBIG, "raise the file size limit"),
        (errno.EIO, "check the disk holding /var/lib/iss/published"),
    ],
)
def test_the_area_holding_the_failing_path_is_the_one_named(code, advice):
    path = "/var/lib/iss/published/ACME/p/r/repodata/primary.xml.gz"
    fault = disk_fault(OSError(code, "words", path), (STORE, PUBLISHED), "publishing")
    assert fault is not None and f"at {path};" in fault.message and advice in fault.message
    assert fault.details["errno"] == errno.errorcode[code]


def test_a_rename_names_its_target_in_the_store():
    e = OSError(
        errno.EROFS, "Read-only file system", "/work/imports/b/Packages/a.rpm", None, "/var/lib/iss/store/tmp/b"
    )
    fault = disk_fault(e, (STORE,), "importing")
    assert fault is not None and "at /var/lib/iss/store/tmp/b;" in fault.message


def test_other_errors_and_paths_outside_the_areas_stay_what_they_are():
    assert disk_fault(FileNotFoundError(errno.ENOENT, "gone", "/var/lib/iss/store/tmp/x"), (STORE,), "x") is None
    assert disk_fault(OSError(errno.EACCES, "Permission denied", "/media/dvd/bundle.tgz"), (STORE,), "x") is None
    with pytest.raises(FileNotFoundError), disk_faults(STORE, doing="x"):
        raise FileNotFoundError(errno.ENOENT, "gone", "/var/lib/iss/store/tmp/x")
    with pytest.raises(BackendError) as raised, disk_faults(STORE, doing="storing"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(raised.value.__cause__, OSError)
