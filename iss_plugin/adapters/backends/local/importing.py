"""Changing a repository of the local store from files: adding and removing packages, and importing
a yum tree (a bundle's) on top of a base version, checked against the target it promises."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.backends.local.catalog import Catalog, identity
from iss_plugin.adapters.backends.local.ingest import Ingester
from iss_plugin.adapters.backends.local.versions import VersionWriter
from iss_plugin.adapters.content_types import ContentType, metadata_units_of
from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import BaseMismatch, BundleIntegrityError


class Importer:
    def __init__(self, catalog: Catalog, ingester: Ingester, versions: VersionWriter):
        self.catalog = catalog
        self.ingester = ingester
        self.versions = versions

    def add_packages(self, repo: str, files: Sequence[Path]) -> int:
        """Copy RPM files into the store (they stay the caller's: never hardlinked) and into a new
        version. Packages the latest version holds already are skipped; nothing new: same version."""
        r = self.catalog.repo(repo, lock=True)
        items = self.ingester.ingest(self.catalog.content_type(r), [Path(f) for f in files], mode="copy")
        return self.versions.commit(r, self.catalog.snapshot(r, r.latest_version), items, set())

    def remove_packages(self, repo: str, sha256s: Iterable[str]) -> int:
        """A new version without these packages; checksums the latest version lacks are ignored."""
        r = self.catalog.repo(repo, lock=True)
        return self.versions.commit(r, self.catalog.snapshot(r, r.latest_version), [], {s.lower() for s in sha256s})

    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation, *, take_files: bool = False) -> int:
        """A new version = expect.base_version's packages - expect.removed + the tree's package files.

        Only the tree's package files are read (their headers give the metadata chunks and their
        sha256); its repodata is not needed, and the work follows the size of the change. The
        result must have expect.target_digest and expect.target_count, else BundleIntegrityError
        and no version is written (the session holds the new store rows: the caller rolls back).
        take_files=True: the tree is a staging directory the caller owns and discards; its files
        are moved into the store instead of copied."""
        catalog = self.catalog
        take_files = take_files or expect.disposable_tree
        r = catalog.repo(repo, lock=True)
        ct = catalog.content_type(r)
        tree = Path(tree)
        if expect.base_version is not None and catalog.find_version(r, expect.base_version) is None:
            latest = catalog.version_row(r, r.latest_version)
            digest = identity(latest)
            raise BaseMismatch(
                f"repository '{repo}' has no version {expect.base_version} to apply {tree} to; "
                f"its latest is {latest.number} ({latest.package_count} packages, {digest})",
                details={"has": {"version": latest.number, "package_count": latest.package_count, "digest": digest}},
            )
        holder = metadata_units_of(ct)
        units = holder.read_tree_units(tree) if holder is not None else None  # the target's, in full
        items = self.ingester.ingest(ct, tree_unit_files(ct, tree), mode="move" if take_files else "copy")
        current = catalog.snapshot(r, r.latest_version)
        if expect.base_version is None:
            base: Sequence[str] = ()
        elif expect.base_version == r.latest_version:
            base = current
        else:
            base = catalog.snapshot(r, expect.base_version)
        removed = {s.lower() for s in expect.removed}
        in_tree = {sha for _, sha, _ in items}
        target = {sha for sha in base if sha not in removed} | in_tree
        current_set = set(current)
        # packages of the base that the latest version lacks (only when the base is not the latest)
        from_base = [sha for sha in base if sha in target and sha not in in_tree and sha not in current_set]
        add = list(items) + catalog.items(from_base)
        remove = current_set - target
        return self.versions.commit(r, current, add, remove, expect=expect, repo_key=repo, tree=tree, units=units)

    def add_units(self, repo: str, units: Sequence[MetadataUnit]) -> int:
        """A new version with these metadata units added (the same version if it holds them all)."""
        r = self.catalog.repo(repo, lock=True)
        current = self.versions.units.list_units(r.id, r.latest_version)
        merged = list({u.digest: u for u in [*current, *units]}.values())
        return self.versions.commit(r, self.catalog.snapshot(r, r.latest_version), [], set(), units=merged)


def tree_unit_files(ct: ContentType, tree: Path) -> list[str]:
    """The unit files of a tree to import (paths as str: at 20,000 packages a list of Path objects,
    and the path parts pathlib interns, weigh MiBs), sorted; anything an import does not accept is
    an error."""
    if not tree.is_dir():
        raise BundleIntegrityError(f"{tree} is not a directory holding a yum tree")
    found, problems = [], []
    top = os.fspath(tree)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                problems.append(f"{os.path.relpath(os.path.join(dirpath, name), top)} is a symbolic link")
        for name in filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)  # POSIX paths: already /-separated
            if not ct.is_unit_path(rel):
                continue
            if os.path.islink(p) or not os.path.isfile(p):
                problems.append(f"{rel} is not a regular file")
                continue
            found.append(p)
    if problems:
        raise BundleIntegrityError(f"{tree} holds entries an import does not accept; nothing was imported", problems)
    return sorted(found)
