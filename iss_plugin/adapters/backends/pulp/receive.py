"""Package files streamed into Pulp as they arrive (a pull from a source's stream, docs/architecture.md
§7): the stream reader checks each file's sha256 against the signed manifest and hands it here.

Files are gathered in batches of one repository, at most `stream_batch` files; a full batch goes into
Pulp in the background while the stream goes on (so at most two batches lie on disk, whatever the
bundle's size): a full batch (or one of `bulk_upload` files) by one sync of a yum tree written around
it under the shared import directory by the createrepo_c command, in a process of its own (one task;
measured here 100 packages ~3 s, against ~125 ms per upload; createrepo_c loaded into this process
would cost 22 MiB of a streaming destination's 150 MB bound), the last few files of a repository
(or every batch without a shared import directory or a createrepo_c command) by uploads. Either way
they land in the repository's `#incoming` repository (emptied by the stream's first batch for it),
never in the repository itself: nothing visible changes, and an orphan cleanup cannot remove them
before import_tree adds them by reference (it finds them by sha256). Packages Pulp holds already
(looked up once, from the manifest's checksums) are not sent again. A createrepo_c command that fails
ends the stream with its BackendError (tree.py), the batch's files and tree removed."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.adapters.backends.pulp.tree import CommandNotStarted, createrepo_c_command, write_repo_around_in_child
from iss_plugin.domain.errors import BundleIntegrityError

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.pulp.content import PulpContent

Batch = list[tuple[str, Path]]  # (sha256, file)

log = logging.getLogger(__name__)


class PulpPackageReceiver:
    def __init__(self, backend: PulpContent, expected: Collection[str], batch_files: int) -> None:
        self.backend = backend
        self.batch_files = max(1, batch_files)
        self.known = backend._content_by_sha(sorted(set(expected))) if expected else {}
        self.flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iss-receive")
        self.in_flight: Future[list[str]] | None = None
        self.repo: str | None = None
        self.batch: Batch = []
        self.received: set[str] = set()
        self.emptied: set[str] = set()  # repositories whose #incoming this stream has emptied
        self.problems: list[str] = []
        self.sent = 0  # package files that went into Pulp (not held already)

    def put(self, repo: str, path: Path, sha256: str) -> None:
        self.received.add(sha256)
        if sha256 in self.known:
            path.unlink(missing_ok=True)
            return
        if self.repo != repo or len(self.batch) >= self.batch_files:
            self._flush()
        self.repo = repo
        self.batch.append((sha256, path))

    def _flush(self) -> None:
        """Send the gathered batch in the background, once the one before it is in."""
        self._wait()
        if self.batch and self.repo is not None:
            batch, self.batch = self.batch, []
            self.in_flight = self.flusher.submit(self._send, self.repo, batch)

    def _wait(self) -> None:
        if self.in_flight is not None:
            future, self.in_flight = self.in_flight, None
            self.problems += future.result()  # a transient error is raised again here

    def _send(self, repo: str, batch: Batch) -> list[str]:
        b = self.backend
        try:
            r = b._ensure_named(
                b.incoming_name(repo),
                {"retain_repo_versions": 1, "description": f"iss: package files on their way into {repo}"},
            )
            first = repo not in self.emptied
            self.emptied.add(repo)
            command = createrepo_c_command()
            if len(batch) >= min(b.bulk_upload, self.batch_files) and b.shared_import_dir is not None and command:
                try:
                    return self._sync(repo, r, batch, command, mirror=first)
                except CommandNotStarted as e:
                    _forget_command_unless_found(e)
            uploaded, problems = b._upload(batch)
            if uploaded or first:
                b._modify(
                    r,
                    add=sorted(uploaded.values()),
                    remove=["*"] if first else [],
                    doing=f"holding {len(uploaded)} streamed packages for '{repo}'",
                )
            self.sent += len(uploaded)
            return problems
        finally:
            for _sha, path in batch:
                path.unlink(missing_ok=True)

    def _sync(self, repo: str, r: Entity, batch: Batch, command: str, *, mirror: bool) -> list[str]:
        b = self.backend
        assert b.shared_import_dir is not None
        stage = b.shared_import_dir / f"iss-stream-{uuid.uuid4().hex}"
        try:
            files = [path for _sha, path in batch]
            problems = write_repo_around_in_child(stage, files, command, what=f"the stream's batch for '{repo}'")
            for _sha, path in batch:
                path.unlink(missing_ok=True)  # the stage holds it now (a hard link, or a copy)
            if problems:
                return problems
            b._sync_from(r, stage.as_uri() + "/", mirror=mirror, what=f"{len(batch)} streamed packages")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        self.sent += len(batch)
        return []

    def hold(self) -> None:
        self._flush()
        self._wait()
        if not self.problems:  # by checksum: a concurrent stream's batch may have replaced an #incoming version
            sent = sorted(self.received - set(self.known))
            held = self.backend._content_by_sha(sent)
            self.problems = [
                f"{sha}: Pulp does not hold it after the stream's batches went in" for sha in sent if sha not in held
            ]
        if self.problems:
            raise BundleIntegrityError(
                f"{len(self.problems)} package files of the stream could not go into Pulp; nothing was imported",
                self.problems[:200],
            )

    def close(self) -> None:
        self.flusher.shutdown(wait=True, cancel_futures=True)
        for _sha, path in self.batch:
            path.unlink(missing_ok=True)
        self.batch = []


def _forget_command_unless_found(e: CommandNotStarted) -> None:
    """A createrepo_c command that could not start is looked up again (once per process otherwise).
    Gone (removed, or no longer executable): as on a machine without one, the batches go in by
    uploads, and the log says so. Still there (not a program, a script whose interpreter is
    missing): the pull fails with e; uploads would hide a broken install for good."""
    createrepo_c_command.cache_clear()
    if createrepo_c_command() is not None:
        raise e
    log.warning(
        "the createrepo_c command %s could not be started (%s) and is no longer found: the stream's batches "
        "go into Pulp by uploads (~125 ms a package, against one sync a batch); install createrepo_c",
        e.details.get("command"),
        e.details.get("cause"),
    )
