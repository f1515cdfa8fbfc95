"""Export: a publication of the version written by Pulp's filesystem exporter (hardlinks when on one
filesystem) into the shared export directory, with `start_repository_version` for incremental trees
(full metadata, only the new package files), then moved into the caller's directory.

A content view publish calls prepare_export: the publication the exporter needs is made then (as
Katello publishes a content view version), not during the export."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from iss_plugin.adapters.backends.base import ExportedTree, clear_export_dir, prepare_export_dir
from iss_plugin.adapters.backends.pulp.catalog import _FILENAMES, PulpCatalog
from iss_plugin.adapters.backends.pulp.placement import PulpPlacement
from iss_plugin.adapters.backends.pulp.tree import file_sha256
from iss_plugin.domain.errors import BackendError, ConfigError
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import standard_location

log = logging.getLogger(__name__)

REPODATA = "repodata"


class PulpExport(PulpPlacement, PulpCatalog):
    """Version trees out of Pulp, through its filesystem exporter."""

    shared_export_dir: Path | None

    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        dest = Path(dest)
        created = prepare_export_dir(dest)
        try:
            return self._export(repo, version, base_version, dest)
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise

    def prepare_export(self, repo: str, version: int) -> None:
        """The publication the filesystem exporter writes (called when a content view version is
        published, as Katello publishes then; an export reuses it)."""
        self._publication(self._version_href(repo, version), f"'{repo}' version {version}")

    def _export(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        if self.shared_export_dir is None:
            raise ConfigError(
                "the pulp backend needs pulp.shared_export_dir (under Pulp's ALLOWED_EXPORT_PATHS) to export"
            )
        href = self._version_href(repo, version)
        base_href = self._version_href(repo, base_version) if base_version is not None else None
        publication = self._publication(href, f"'{repo}' version {version}")
        token = uuid.uuid4().hex
        out = self.shared_export_dir / f"iss-export-{token}"
        exporter = self.pulp.call(
            "exporters_core_filesystem_create",
            "creating a filesystem exporter",
            body={"name": f"iss-export-{token}", "path": str(out), "method": "hardlink"},
        )
        try:
            body = {"publication": publication}
            if base_href:
                body["start_repository_version"] = base_href
            self.pulp.run(
                "exporters_core_filesystem_exports_create",
                f"exporting '{repo}' version {version}" + (f" from version {base_version}" if base_href else ""),
                parameters={"filesystem_exporter_href": exporter["pulp_href"]},
                body=body,
            )
            _move_tree(out, dest)
        finally:
            try:  # not waited for: nothing depends on it
                self.pulp.call(
                    "exporters_core_filesystem_delete",
                    "deleting the filesystem exporter",
                    parameters={"filesystem_exporter_href": exporter["pulp_href"]},
                )
            except BackendError as e:
                log.warning("could not delete filesystem exporter %s: %s", exporter["pulp_href"], e)
            finally:
                shutil.rmtree(out, ignore_errors=True)
        return self._exported_tree(href, dest)

    def _exported_tree(self, href: str, dest: Path) -> ExportedTree:
        """The files of the tree at dest: the package files' sha256 from the version's (cached) set,
        anything else hashed."""
        url = self.pulp.conn.url
        members = self._version_set(href)
        known = {standard_location(_FILENAMES[(url, h)]): sha for sha, h in members.items() if (url, h) in _FILENAMES}
        files, new = [], 0
        for path in sorted(p for p in dest.rglob("*") if p.is_file()):
            rel = path.relative_to(dest).as_posix()
            size = path.stat().st_size
            sha = known.get(rel)
            if sha is not None:
                files.append(FileEntry(rel, sha, size))
            else:
                files.append(FileEntry(rel, file_sha256(path), size))
            if not rel.startswith(REPODATA + "/"):
                new += 1
        return ExportedTree(files=tuple(files), new_packages=new)


def _move_tree(src: Path, dest: Path) -> None:
    """Move Pulp's export into dest (an empty directory): rename entries on one filesystem, else copy."""
    if not src.is_dir():
        raise BackendError(f"Pulp's export finished but wrote nothing at {src}")
    for child in src.iterdir():
        target = dest / child.name
        try:
            os.rename(child, target)
        except OSError:
            if child.is_dir():
                shutil.copytree(child, target)
            else:
                shutil.copy2(child, target)
