"""Exporting a version of the local store: as a yum tree in a directory (package files hardlinked
or copied there), or by reference (only the metadata written; the package files are read where
the store keeps them). Only the packages the base version lacks travel.

By reference, the metadata is written inside the store too (its tmp, then the content-addressed
`index-cache/repodata/ab/cdef...`, derived data pruned with the index cache): a stream of 20,000
packages stages nothing outside the store larger than one package (issue 12)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from iss_plugin.adapters.backends.base import ExportedTree, clear_export_dir, prepare_export_dir
from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.trees import TreeWriter
from iss_plugin.adapters.db.models import StoreRepository
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package


def _prefix(dest: Path, relative_to: Path | None) -> str:
    """'' or 'a/b/': how paths relative to dest start when made relative to `relative_to`."""
    if relative_to is None or Path(relative_to) == dest:
        return ""
    return dest.relative_to(relative_to).as_posix() + "/"


class Exporter:
    def __init__(
        self, catalog: Catalog, trees: TreeWriter, blobs: BlobStore, *, hardlink: bool, repodata_root: Path
    ) -> None:
        self.catalog = catalog
        self.trees = trees
        self.blobs = blobs
        self.hardlink = hardlink
        self.repodata_root = repodata_root

    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        return self._export(repo, version, base_version, Path(dest), hardlink=self.hardlink)

    def export_version_by_reference(
        self,
        repo: str,
        version: int,
        base_version: int | None,
        dest: Path,
        *,
        added: Sequence[Package] | None = None,
        relative_to: Path | None = None,
    ) -> ExportedTree:
        """ExportsByReference: the repodata under dest; the package files stay in the store and
        `sources` names them (the reader checks sizes while reading, so no stat here)."""
        r = self.catalog.repo(repo)
        ct = self.catalog.content_type(r)
        v = self.catalog.version_row(r, version)
        shas = self.catalog.snapshot(r, version)
        new = self._new_shas(r, shas, base_version)
        packages = self.trees.package_files(new, added, repo, version)
        dest = Path(dest)
        created = prepare_export_dir(dest)
        work = self.blobs.new_tmp_path("repodata")
        try:
            index = self.trees.write_index(ct, v, shas, work)
            kept = {f.path: self._keep(work / f.path, f.sha256) for f in index}
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        prefix = _prefix(dest, relative_to)
        files = [FileEntry(prefix + loc, sha, size) for sha, loc, size in packages]
        new_packages = len(files)
        del packages
        # the same path strings key `sources` (one copy of 20,000 paths, not two)
        sources = {f.path: self.blobs.file_of(f.sha256) for f in files}
        files += [FileEntry(prefix + f.path, f.sha256, f.size) for f in index]
        sources.update((prefix + path, source) for path, source in kept.items())
        return ExportedTree(files=tuple(files), new_packages=new_packages, sources=sources, link_sources=self.hardlink)

    def _keep(self, written: Path, sha256: str) -> str:
        """A metadata file just written in the store's tmp, moved to its content-addressed place
        (read-only: a directory bundle may hard-link it); an existing copy is kept, and touched so
        that pruning the index cache leaves it while it is used."""
        target = self.repodata_root / sha256[:2] / sha256[2:]
        if target.is_file():
            os.utime(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(written, 0o444)
            os.replace(written, target)
        return os.fspath(target)

    def _export(self, repo: str, version: int, base_version: int | None, dest: Path, *, hardlink: bool) -> ExportedTree:
        r = self.catalog.repo(repo)
        ct = self.catalog.content_type(r)
        v = self.catalog.version_row(r, version)
        shas = self.catalog.snapshot(r, version)
        new = self._new_shas(r, shas, base_version)
        created = prepare_export_dir(dest)
        try:
            files = [
                FileEntry(loc, sha, size)
                for sha, loc, size in self.trees.place_packages(dest, new, hardlink, repo, version)
            ]
            new_packages = len(files)
            files.extend(self.trees.write_index(ct, v, shas, dest))
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise
        return ExportedTree(files=tuple(files), new_packages=new_packages)

    def _new_shas(self, r: StoreRepository, shas: Sequence[str], base_version: int | None) -> Sequence[str]:
        """The checksums of `shas` (a version) that base_version lacks (all without a base)."""
        if base_version is None:
            return shas
        in_base = set(self.catalog.snapshot(r, base_version))
        return [sha for sha in shas if sha not in in_base]
