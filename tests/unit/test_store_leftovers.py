"""What a crashed process leaves in the local store's work areas is swept by `iss store gc`, files
and directories alike; work still going on (something written lately, however deep) is kept."""

import os
import time

from iss_plugin.adapters.backends.local.blobs import BlobStore

HOUR = 3600


def _write(path, age_seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    then = time.time() - age_seconds
    os.utime(path, (then, then))


def _age(path, age_seconds):
    """`path` and every directory under it (writing a file touches its directory)."""
    then = time.time() - age_seconds
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            os.utime(os.path.join(root, d), (then, then))
    os.utime(path, (then, then))


def test_stale_files_and_directories_go_recent_work_stays(tmp_path):
    store = BlobStore(tmp_path)
    _write(tmp_path / "tmp" / "old-file", 2 * HOUR)
    _write(tmp_path / "tmp" / "new-file", 0)
    # a by-reference export's repodata work directory left by a killed process
    _write(tmp_path / "tmp" / "repodata-1" / "repodata" / "primary.xml.gz", 2 * HOUR)
    _age(tmp_path / "tmp" / "repodata-1", 2 * HOUR)
    # a stream extracted in the store by a crashed pull, and one still being extracted
    _write(tmp_path / "incoming" / "stream-dead" / "repos" / "p" / "r" / "a.rpm", 2 * HOUR)
    _write(tmp_path / "incoming" / "stream-live" / "repos" / "p" / "r" / "old.rpm", 2 * HOUR)
    _write(tmp_path / "incoming" / "stream-live" / "repos" / "p" / "r" / "new.rpm", 0)
    for d in ("incoming/stream-dead", "incoming/stream-live"):
        _age(tmp_path / d, 2 * HOUR)

    assert store.remove_stale_tmp(HOUR) == 3

    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["new-file"]
    assert sorted(p.name for p in (tmp_path / "incoming").iterdir()) == ["stream-live"]
    assert (tmp_path / "incoming" / "stream-live" / "repos" / "p" / "r" / "new.rpm").is_file()


def test_nothing_to_sweep(tmp_path):
    assert BlobStore(tmp_path).remove_stale_tmp(HOUR) == 0
