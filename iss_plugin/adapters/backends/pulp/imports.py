"""Import: a yum tree into a repository, as one new version with the expected package set.

The tree is checked (files, paths, listed packages and their digest against the expectation)
before Pulp sees it. Packages the tree lists but neither carries nor Pulp holds are a base
mismatch. Up to MODIFY_IMPORT_LIMIT new package files (and package metadata only), the new files go
into Pulp (uploads, or for many one sync into the repository's incoming repository) and ONE modify
task makes the new version: the cost follows the change (it keeps the latest version's metadata
units: only when the result must hold exactly those). Larger changes, or changes of metadata units
(errata, comps, modules), are applied by a mirror sync of the tree, hardlinked into the shared import
directory (Pulp reads only under ALLOWED_IMPORT_PATHS); Pulp does not fetch packages it already
holds. The resulting version must have the expected digest (its packages and metadata units, read
back from its publication: pulp/units.py); otherwise it is deleted."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.backends.pulp.catalog import _SETS
from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.adapters.backends.pulp.entities import version_number
from iss_plugin.adapters.backends.pulp.tree import repomd_types
from iss_plugin.adapters.backends.pulp.units import _UNITS, PulpUnits
from iss_plugin.domain.content_units import MetadataUnit, units_digest, version_digest
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError
from iss_plugin.domain.packages import package_set_digest

if TYPE_CHECKING:
    from iss_plugin.adapters.content_types import RemoteUnit

PACKAGE_METADATA = {"primary", "filelists", "other", "primary_db", "filelists_db", "other_db"}


@dataclass(frozen=True)
class TreePackage:
    """A package a tree's metadata lists, once checked: its file's path in the tree and its sha256."""

    href: str
    sha256: str


class PulpImport(PulpUnits):
    """Trees in: checked, applied by one modify or by a mirror sync, and the result verified."""

    modify_import_limit: int

    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation) -> int:
        tree = Path(tree)
        r = self._repo(repo, fresh=True)
        listed, units = _listed_packages(tree, expect)
        latest_href = r["latest_version_href"]
        latest = version_number(latest_href)
        if self._digest(repo, latest, latest_href, self._version_set(latest_href), None) == expect.target_digest:
            return latest  # already there: re-delivery changes nothing
        if expect.base_version is not None:
            self._check_base(repo, r, expect.base_version)
        # packages the tree lists without their file: the latest version or Pulp must hold them
        latest_set = self._version_set(latest_href)
        absent = [u for u in listed if u.sha256 not in latest_set and not (tree / u.href).is_file()]
        if absent:
            self._check_held(repo, tree, absent, latest_href, expect)
        to_upload = [u for u in listed if u.sha256 not in latest_set and (tree / u.href).is_file()]
        # a modify keeps the latest version's units and takes none from the tree: only when those
        # are the units the result must hold (none, or a change of packages only)
        held = self._version_units(repo, latest, latest_href, self._read_version(latest_href, repo, latest))
        same_units = {u.digest for u in units} == {u.digest for u in held}
        beyond_packages = not repomd_types(tree) <= PACKAGE_METADATA
        if same_units and (len(to_upload) <= self.modify_import_limit or (beyond_packages and not units)):
            version = self._apply_by_modify(repo, r, tree, listed)
        else:  # large changes, or metadata units (errata, comps, modules): Pulp's mirror sync
            with self._staged(tree) as staged:
                version = self._sync_from(r, staged.as_uri() + "/", mirror=True, what=str(tree))
        self._check_result(repo, tree, expect, version, latest_href)
        return version

    def _check_held(
        self, repo: str, tree: Path, absent: list[TreePackage], latest_href: str, expect: ImportExpectation
    ) -> None:
        """The packages the tree lists without their file must be in Pulp already."""
        held = self._content_by_sha([u.sha256 for u in absent])
        lacking = [u for u in absent if u.sha256 not in held]
        if lacking:
            cls = BaseMismatch if expect.base_version is not None else BundleIntegrityError
            latest = self.version_info(repo, version_number(latest_href))
            raise cls(
                f"{tree} leaves out {len(lacking)} package files that Pulp does not hold either; "
                f"'{repo}' lacks the base this tree needs (it has version {latest.number}, "
                f"{latest.package_count} packages, {latest.digest}); nothing was imported",
                [u.href for u in lacking[:20]],
                details={
                    "has": {
                        "version": latest.number,
                        "package_count": latest.package_count,
                        "digest": latest.digest,
                    }
                },
            )

    def _check_result(self, repo: str, tree: Path, expect: ImportExpectation, version: int, latest_href: str) -> None:
        """The new version must hold the promised packages; a wrong one is deleted again."""
        href = self._version_href(repo, version)
        got = self._version_set(href)
        digest = self._digest(repo, version, href, got, None)
        if digest == expect.target_digest:
            return
        if version != version_number(latest_href):
            _SETS.drop((self.pulp.conn.url, self._version_href(repo, version)))
            _UNITS.drop((self.pulp.conn.url, self._version_href(repo, version)))
            self.pulp.run(
                "repositories_rpm_rpm_versions_delete",
                f"deleting the wrong version {version} of '{repo}'",
                parameters={"rpm_rpm_repository_version_href": self._version_href(repo, version)},
            )
            self._repos.pop(self.pulp_name(repo), None)  # its cached latest version is gone
        raise BundleIntegrityError(
            f"importing {tree} into '{repo}' made {len(got)} packages (package digest {package_set_digest(got)}) "
            f"with digest {digest} (packages and metadata units), but the bundle promises "
            f"{expect.target_count} packages with digest {expect.target_digest}; the version was removed again",
        )

    def _apply_by_modify(self, repo: str, r: Entity, tree: Path, listed: list[TreePackage]) -> int:
        """Make the latest version equal to the tree's package list with one modify task: packages
        Pulp holds are added by reference, the tree's new package files are uploaded first. Costs
        follow the change, not the repository (a mirror sync re-reads every package's metadata)."""
        current = self._version_set(r["latest_version_href"])
        wanted = {u.sha256: u for u in listed}
        adding = [u for sha, u in wanted.items() if sha not in current]
        removing = [href for sha, href in current.items() if sha not in wanted]
        if not adding and not removing:
            return version_number(r["latest_version_href"])
        held = self._content_by_sha([u.sha256 for u in adding])
        uploaded, problems = self._send_files(repo, [(u.sha256, tree / u.href) for u in adding if u.sha256 not in held])
        if problems:
            raise BundleIntegrityError(
                f"{len(problems)} package files of {tree} were refused; nothing was imported", problems
            )
        held.update(uploaded)
        return self._modify(
            r,
            add=[held[u.sha256] for u in adding],
            remove=removing,
            doing=f"importing {tree} into '{repo}' (+{len(adding)} -{len(removing)})",
        )

    def _check_base(self, repo: str, r: Entity, base_version: int) -> None:
        numbers = {
            v["number"]
            for v in self.pulp.list(
                "repositories_rpm_rpm_versions_list",
                f"listing versions of '{repo}'",
                {"rpm_rpm_repository_href": r["pulp_href"], "fields": ["number"]},
            )
        }
        if base_version not in numbers:
            latest = self.version_info(repo, version_number(r["latest_version_href"]))
            raise BaseMismatch(
                f"repository '{repo}' has no version {base_version} to apply this tree to; its latest is "
                f"{latest.number} ({latest.package_count} packages, {latest.digest})",
                details={
                    "has": {"version": latest.number, "package_count": latest.package_count, "digest": latest.digest}
                },
            )


def _listed_packages(tree: Path, expect: ImportExpectation) -> tuple[list[TreePackage], list[MetadataUnit]]:
    """The packages the tree's metadata lists and the metadata units the result must hold, once the
    tree and its lists pass every check that needs no Pulp: safe entries, sha256 checksums, relative
    locations, the promised count and digest (of the packages and the tree's units, or of the
    packages alone from a source that does not count units: then the result holds none)."""
    from iss_plugin.adapters.content_types import get_content_type, metadata_units_of
    from iss_plugin.adapters.content_types.yum import read_tree_packages

    _check_tree(tree)
    try:
        listed = read_tree_packages(tree)
    except BackendError as e:
        raise BundleIntegrityError(f"{tree} is not a readable yum tree: {e.message}", e.problems) from None
    problems = [f"{u.href}: checksum type {u.checksum_type}, not sha256" for u in listed if u.sha256 is None]
    problems += [f"{u.href}: {why}" for u in listed if (why := _unsafe_href(u))]
    if problems:
        raise BundleIntegrityError(f"{tree} lists packages an import does not accept; nothing was imported", problems)
    checked = [TreePackage(u.href, u.sha256) for u in listed if u.sha256 is not None]  # all of them, now
    shas = [u.sha256 for u in checked]
    packages_digest = package_set_digest(shas)
    holder = metadata_units_of(get_content_type("yum"))
    units = holder.read_tree_units(tree) if holder is not None else []
    digest = version_digest(packages_digest, units_digest(u.digest for u in units))
    if packages_digest == expect.target_digest:
        units, digest = [], packages_digest
    if digest != expect.target_digest or len(set(shas)) != expect.target_count:
        raise BundleIntegrityError(
            f"{tree} lists {len(set(shas))} packages and {len(units)} metadata units with digest {digest}, but "
            f"the bundle promises {expect.target_count} packages with digest {expect.target_digest}; nothing "
            "was imported",
            details={
                "expected_digest": expect.target_digest,
                "expected_count": expect.target_count,
                "digest": digest,
                "count": len(set(shas)),
            },
        )
    return checked, units


def _unsafe_href(u: RemoteUnit) -> str | None:
    """Why a package location in a tree's metadata may not be followed (None: it may)."""
    if u.base_url:
        return f"points elsewhere (xml:base {u.base_url})"
    href = u.href
    if href.startswith("/") or "://" in href or "\\" in href or "\0" in href or ".." in href.split("/"):
        return "is not a relative path inside the tree"
    return None


def _check_tree(tree: Path) -> None:
    """Refuse what an import never accepts (before Pulp sees anything): links, devices, odd names."""
    if not tree.is_dir() or tree.is_symlink():
        raise BundleIntegrityError(f"{tree} is not a directory holding a yum tree")
    problems = []
    for dirpath, dirnames, filenames in os.walk(tree):
        d = Path(dirpath)
        for name in dirnames + filenames:
            p = d / name
            rel = p.relative_to(tree).as_posix()
            if p.is_symlink():
                problems.append(f"{rel} is a symbolic link")
            elif name in filenames and not p.is_file():
                problems.append(f"{rel} is not a regular file")
            elif "\\" in rel or "\0" in rel:
                problems.append(f"{rel} has a character a tree path may not hold")
    if problems:
        raise BundleIntegrityError(f"{tree} holds entries an import does not accept; nothing was imported", problems)
