"""Package files streamed into Pulp one at a time (a pull from a source's stream, docs/architecture.md
§7): the stream reader checks each file's sha256 against the signed manifest, hands it here, and this
uploads it (Pulp's synchronous upload: a content unit in no repository, nothing visible) and removes
it; at most `upload_threads` files wait on disk at once. Packages Pulp holds already (looked up once
by the manifest's checksums) are not sent again. `hold` then puts them into each repository's
`#incoming` repository (one modify per repository), so an orphan cleanup cannot remove them before
import_tree adds them to the repository by reference (its modify, or a mirror sync that finds them
by checksum)."""

from __future__ import annotations

import threading
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from iss_plugin.adapters.backends.pulp.entities import sha_of
from iss_plugin.domain.errors import BackendError, BundleIntegrityError

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.pulp.content import PulpContent

# what one put came to: (repository key, sha256, content href or None, problem or None)
_Outcome = tuple[str, str, str | None, str | None]


class PulpPackageReceiver:
    def __init__(self, backend: PulpContent, expected: Collection[str]) -> None:
        self.backend = backend
        self.known = backend._content_by_sha(sorted(set(expected))) if expected else {}
        threads = max(1, backend.upload_threads)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="iss-receive")
        self.slots = threading.BoundedSemaphore(threads)  # files on disk waiting for their upload
        self.pending: list[Future[_Outcome]] = []
        self.uploaded = 0
        if expected:
            backend.pulp.operation_url("content_rpm_packages_upload")  # resolved once, before the threads

    def put(self, repo: str, path: Path, sha256: str) -> None:
        self.slots.acquire()  # blocks the stream while `upload_threads` files are on their way
        try:
            self.pending.append(self.pool.submit(self._store, repo, path, sha256))
        except BaseException:
            self.slots.release()
            path.unlink(missing_ok=True)
            raise

    def _store(self, repo: str, path: Path, sha256: str) -> _Outcome:
        try:
            href = self.known.get(sha256)
            if href is not None:
                return repo, sha256, href, None
            try:
                e = self.backend.pulp.upload_file("content_rpm_packages_upload", path)
            except BackendError as err:
                if err.transient:
                    raise
                return repo, sha256, None, f"{path.name}: Pulp refused it: {err.message}"
            got = sha_of(e)
            if got != sha256:
                return repo, sha256, None, f"{path.name}: Pulp stored sha256 {got}, the file has {sha256}"
            self.uploaded += 1
            return repo, sha256, str(e["pulp_href"]), None
        finally:
            path.unlink(missing_ok=True)
            self.slots.release()

    def hold(self) -> None:
        by_repo: dict[str, set[str]] = {}
        problems: list[str] = []
        for future in self.pending:
            repo, _sha, href, problem = future.result()  # a transient error is raised again here
            if problem:
                problems.append(problem)
            elif href is not None:
                by_repo.setdefault(repo, set()).add(href)
        self.pending = []
        if problems:
            raise BundleIntegrityError(
                f"Pulp refused {len(problems)} package files of the stream; nothing was imported", problems[:200]
            )
        b = self.backend
        for repo, hrefs in sorted(by_repo.items()):
            r = b._ensure_named(
                b.incoming_name(repo),
                {"retain_repo_versions": 1, "description": f"iss: package files on their way into {repo}"},
            )
            b._modify(r, add=sorted(hrefs), remove=["*"], doing=f"holding {len(hrefs)} streamed packages for '{repo}'")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
