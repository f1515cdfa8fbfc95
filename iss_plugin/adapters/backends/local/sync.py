"""Synchronizing a repository of the local store from a yum repository (file://, http(s)://):
read the remote index, download only the packages the store lacks (several at a time), make a
version."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.fetch import Fetcher
from iss_plugin.adapters.backends.local.ingest import Ingester
from iss_plugin.adapters.backends.local.rows import Item, batched
from iss_plugin.adapters.backends.local.versions import VersionWriter
from iss_plugin.adapters.content_types import ContentType, RemoteUnit, Unit, metadata_units_of
from iss_plugin.domain.content_units import replace_by_key
from iss_plugin.domain.errors import BackendError


@dataclass(frozen=True)
class SyncReport:
    url: str
    listed: int  # packages the remote lists
    fetched: int  # package files downloaded
    fetched_bytes: int
    already_held: int  # listed packages the store had already
    version: int


class Syncer:
    def __init__(
        self, catalog: Catalog, ingester: Ingester, versions: VersionWriter, blobs: BlobStore, download_workers: int
    ):
        self.catalog = catalog
        self.ingester = ingester
        self.versions = versions
        self.blobs = blobs
        self.download_workers = download_workers

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> SyncReport:
        """Synchronize from a yum repository (file://, http(s)://), fetching only the packages the
        store lacks. mirror=True: the new version holds exactly the remote's packages; False: adds."""
        r = self.catalog.repo(repo, lock=True)
        ct = self.catalog.content_type(r)
        base = url if url.endswith("/") else url + "/"
        self.blobs.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.blobs.tmp) as work, Fetcher() as fetch:
            listed = ct.read_remote_index(base, fetch, Path(work))
            holder = metadata_units_of(ct)
            remote_units = holder.read_remote_units(base, fetch, Path(work)) if holder is not None else None
            metadata_files = fetch.files
            known = self.catalog.package_rows([u.sha256 for u in listed if u.sha256])
            held: list[Item] = []
            missing: dict[str, RemoteUnit] = {}
            for u in listed:
                sha = u.sha256
                row = known.get(sha) if sha else None
                if sha and row is not None and self.blobs.has(sha, row[2]):
                    held.append((row[0], sha, row[1]))
                else:
                    missing.setdefault(sha or f"{u.checksum_type}:{u.checksum}:{u.href}", u)
            fetched = self._fetch_units(ct, base, list(missing.values()), fetch)
            fetched_files, fetched_bytes = fetch.files - metadata_files, fetch.bytes
        items = held + fetched
        current = self.catalog.snapshot(r, r.latest_version)
        remove = set(current) - {sha for _, sha, _ in items} if mirror else set()
        units = remote_units
        if units is not None and not mirror:
            units = replace_by_key(self.versions.units.list_units(r.id, r.latest_version), units)
        version = self.versions.commit(r, current, items, remove, units=units)
        return SyncReport(url, len(listed), fetched_files, fetched_bytes, len(held), version)

    def _fetch_units(self, ct: ContentType, base: str, units: list[RemoteUnit], fetch: Fetcher) -> list[Item]:
        """Download units (download_workers at a time), read their headers, store them. Permanent
        problems are collected and raised together; a transient one stops the sync at once."""
        out: list[Item] = []
        problems: list[str] = []
        with ThreadPoolExecutor(max_workers=self.download_workers, thread_name_prefix="iss-sync") as pool:
            for batch in batched(units):
                futures = [pool.submit(self._fetch_unit, ct, base, u, fetch) for u in batch]
                wait(futures)
                got: list[tuple[Path, Unit]] = []
                error: BaseException | None = None
                for f in futures:
                    if f.exception() is not None:
                        error = error or f.exception()
                        continue
                    result = f.result()
                    if isinstance(result, str):
                        problems.append(result)
                    else:
                        got.append(result)
                try:
                    if error is not None:
                        raise error
                    if not problems:
                        out.extend(self.ingester.store_units(got, "adopt"))
                finally:
                    for tmp, _ in got:
                        tmp.unlink(missing_ok=True)
        if problems:
            raise BackendError(f"sync from {base}: {len(problems)} packages failed; no new version was made", problems)
        return out

    def _fetch_unit(self, ct: ContentType, base: str, u: RemoteUnit, fetch: Fetcher) -> tuple[Path, Unit] | str:
        """One package into a temporary file of the store: (path, unit), or a problem (str)."""
        unit_base = (u.base_url if u.base_url.endswith("/") else u.base_url + "/") if u.base_url else base
        url = urljoin(unit_base, u.href)
        tmp = self.blobs.new_tmp_path("sync")
        try:
            sha = fetch(url, tmp, u.checksum_type, u.checksum, u.size or None)
            unit = ct.read_unit(tmp)
        except BackendError as e:
            tmp.unlink(missing_ok=True)
            if e.transient:
                raise
            return e.message.replace(str(tmp), url) + "".join(f"; {p}" for p in e.problems)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if unit.package.sha256 != sha:  # the file changed between download and reading: never expected
            tmp.unlink(missing_ok=True)
            return f"{url}: its sha256 changed while it was read"
        return tmp, unit
