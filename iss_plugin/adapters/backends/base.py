"""What iss needs from a content backend (docs/architecture.md §7).

Repositories are named by a backend key, "<organization>/<product>/<repository>" labels, the same
on every server. Versions are integers local to one backend; what two servers compare is the
package set digest (domain.packages.package_set_digest)."""

from __future__ import annotations

import shutil
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package


@dataclass(frozen=True)
class VersionInfo:
    number: int
    created: datetime
    package_count: int
    digest: str


@dataclass(frozen=True)
class ExportedTree:
    """A yum tree written by export_version: every file under the tree, relative to it."""

    files: tuple[FileEntry, ...]
    new_packages: int
    # Room for metadata beyond packages (updateinfo, comps, modules) without changing the type.
    extra: dict[str, object] = field(default_factory=dict)
    # Files of `files` that were NOT written under the tree (ExportsByReference): path -> a file
    # holding exactly those bytes (the store's own, read-only: read it, never change it).
    sources: Mapping[str, str] = field(default_factory=dict)
    link_sources: bool = True  # a directory bundle may hard-link them (False: copy them)


@dataclass(frozen=True)
class ImportExpectation:
    """What importing a tree must produce: the base it applies to, and the target it must equal."""

    base_version: int | None  # None: a full tree, the result is exactly the tree's packages
    removed: tuple[str, ...]  # sha256 of base packages to drop
    target_digest: str
    target_count: int
    # The tree is a temporary extraction the caller deletes afterwards: a backend may move its
    # files instead of copying them. Never set for a directory bundle the user handed over.
    disposable_tree: bool = False


@dataclass(frozen=True)
class VersionChanges:
    added: list[Package]  # in the version, not in the base
    removed: list[str]  # sha256 of base packages the version no longer has


def prepare_export_dir(dest: Path) -> bool:
    """Make `dest` an empty directory for export_version; True if it was created (the caller
    removes it again on failure). An existing non-empty directory or a file is a UsageError."""
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise UsageError(f"export destination {dest} exists and is not a directory")
        if any(dest.iterdir()):
            raise UsageError(f"export destination {dest} is not empty; give an empty or new directory")
        return False
    dest.mkdir(parents=True)
    return True


def clear_export_dir(dest: Path, *, remove_self: bool) -> None:
    """Undo a failed export_version: remove dest (remove_self, prepare_export_dir created it) or
    empty it again."""
    if remove_self:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def version_changes(backend: ContentBackend, repo: str, base_version: int | None, version: int) -> VersionChanges:
    """What `version` adds to `base_version` and drops from it: at the cost of the change when the
    backend can say so itself (local), otherwise by comparing both package lists."""
    own = getattr(backend, "version_changes", None)
    if own is not None:
        changes: VersionChanges = own(repo, base_version, version)
        return changes
    target = backend.list_packages(repo, version)
    base = {p.sha256 for p in backend.list_packages(repo, base_version)} if base_version is not None else set()
    target_sha = {p.sha256 for p in target}
    return VersionChanges([p for p in target if p.sha256 not in base], sorted(base - target_sha))


@runtime_checkable
class ExportsByReference(Protocol):
    """Optional: a backend whose package files can be read where they are stored.

    The exporter then streams package files straight from the backend's store into an archive
    (tar.gz, ISO, chunks), or links/copies them into a directory bundle itself, instead of having
    them placed in a staging tree first."""

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
        """export_version, except that package files are not written under dest: the tree's
        `sources` says where each one's bytes are (the caller reads them there and checks their
        sizes while reading). `added`: version_changes(repo, base_version, version).added, if the
        caller has it (saves looking the packages up again). `relative_to`: a directory dest is
        in; the tree's paths are then relative to it instead of to dest."""


@runtime_checkable
class StreamsByReference(Protocol):
    """Optional: a backend whose files can be read, while a stream is sent, from where it serves
    them (Pulp: its content app). Only streams use it: a tree's `sources` may then be http(s) URLs,
    which a directory bundle or an ISO cannot take (adapters/bundles/stream.py reads them)."""

    def stream_version_by_reference(
        self,
        repo: str,
        version: int,
        base_version: int | None,
        dest: Path,
        *,
        added: Sequence[Package] | None = None,
        relative_to: Path | None = None,
    ) -> ExportedTree:
        """ExportsByReference.export_version_by_reference, for a stream: every file of the tree
        (repodata too) has a source, a file or a URL; nothing is written under dest."""


class PackageReceiver(Protocol):
    """Package files handed to a backend one at a time, ahead of import_tree (ReceivesPackages)."""

    def put(self, repo: str, path: Path, sha256: str) -> None:
        """Take the package file at `path` (its sha256 checked already) for the repository `repo`.
        The receiver owns the file from now on and removes it once its bytes are stored; nothing
        visible changes (no repository version). May work in the background: `hold` waits."""

    def hold(self) -> None:
        """Wait for every put; BundleIntegrityError or BackendError if one was refused. What was put
        then stays (safe from orphan cleanup) until an import_tree uses it."""

    def close(self) -> None:
        """Stop background work (after hold, or on failure: files not yet stored are dropped)."""


@runtime_checkable
class ReceivesPackages(Protocol):
    """Optional: a backend that stores package files one at a time before the import, so a streamed
    bundle never lies on disk outside the content store (only one package at a time). import_tree
    then gets a tree whose listed package files are absent and finds them in the store by sha256."""

    def package_receiver(self, expected: Collection[str] = ()) -> PackageReceiver:
        """A receiver for one stream; `expected`: the sha256s of the package files it may carry."""


@runtime_checkable
class ReceivesInStore(Protocol):
    """Optional: a backend with a work area inside its content store (same filesystem), where a
    streamed bundle is extracted instead of the import work directory: its repodata and package
    files then never lie outside the content store, and the package files enter it by rename."""

    def incoming_dir(self) -> Path:
        """A directory inside the store for bundles being received (created if missing)."""


@runtime_checkable
class HoldsMetadataUnits(Protocol):
    """Optional: a backend whose versions hold metadata units besides packages (advisories, comps
    entries, modulemd documents: domain.content_units), when the repository's content type has
    them. Its sync and import_tree carry them too, and VersionInfo.digest covers them
    (domain.content_units.version_digest)."""

    def list_units(self, repo: str, version: int) -> list[MetadataUnit]: ...

    def add_units(self, repo: str, units: Sequence[MetadataUnit]) -> int:
        """A new version with these units added (the same version if nothing changed); a unit whose
        key the version holds with other content is refused (RejectedInput), nothing changed."""


@runtime_checkable
class ContentBackend(Protocol):
    name: str

    def ensure_repository(self, repo: str, content_type: str = "yum") -> None:
        """Create the repository (with an empty version 0) unless it exists. Idempotent."""

    def latest_version(self, repo: str) -> int:
        """The newest version number (0 for a new, empty repository)."""

    def list_versions(self, repo: str) -> list[VersionInfo]: ...

    def version_info(self, repo: str, version: int) -> VersionInfo: ...

    def list_packages(self, repo: str, version: int) -> list[Package]: ...

    def add_packages(self, repo: str, files: Sequence[Path]) -> int:
        """Upload RPM files into a new version; returns it (the same version if nothing changed)."""

    def remove_packages(self, repo: str, sha256s: Iterable[str]) -> int: ...

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> int:
        """Synchronize from a yum repository at url (file://, http(s)://), fetching only what is missing."""

    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        """Write a yum tree for `version` into dest (an empty directory): full repodata, and only the
        package files `base_version` lacks (all of them when base_version is None)."""

    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation) -> int:
        """Make a new version from a verified tree on top of expect.base_version; its digest must be
        expect.target_digest (BundleIntegrityError otherwise). Returns the new version."""

    def publish(self, repo: str, version: int) -> str:
        """Make the version readable by yum clients; returns where (a path or URL)."""
