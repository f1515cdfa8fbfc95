"""The catalog of versions: each version's package set, the version list, a version's info and its
changes, the packages of a version, and which packages Pulp holds already.

A version's set is its predecessor's plus what Pulp says it added, minus what it removed
(`repository_version_added/removed` filters), so listing the versions of a repository costs
requests in proportion to the changes; versions are immutable, the sets are cached per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from iss_plugin.adapters.backends.base import VersionChanges, VersionInfo
from iss_plugin.adapters.backends.pulp.client import Entity, Params
from iss_plugin.adapters.backends.pulp.entities import (
    HREF_BATCH,
    IN_BATCH,
    PACKAGE_FIELDS,
    SET_FIELDS,
    batched,
    package_of,
    sha_of,
    utc,
    version_number,
)
from iss_plugin.adapters.backends.pulp.repositories import PulpRepositories
from iss_plugin.domain.packages import Package, package_set_digest


class _SetCache:
    """Package sets of repository versions by (Pulp URL, version href): versions never change."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> dict[str, str] | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._d.pop(key, None)

    def put(self, key: tuple[str, str], value: dict[str, str]) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


_SETS = _SetCache()
# content href -> its file name: content never changes, so this is filled by every set query and
# lets an export name each package file's sha256 without listing the version again
_FILENAMES: dict[tuple[str, str], str] = {}
_FILENAMES_MAX = 500_000


def _remember_filename(url: str, e: Entity) -> None:
    if len(_FILENAMES) > _FILENAMES_MAX:
        _FILENAMES.clear()
    if e.get("location_href"):
        _FILENAMES[(url, e["pulp_href"])] = e["location_href"].rsplit("/", 1)[-1]


class PulpCatalog(PulpRepositories):
    """Reads of versions and their packages, over the cached package sets."""

    def latest_version(self, repo: str) -> int:
        return version_number(self._repo(repo, fresh=True)["latest_version_href"])

    def list_versions(self, repo: str) -> list[VersionInfo]:
        r = self._repo(repo, fresh=True)
        out = []
        for v, shas in self._walk_versions(r):
            out.append(VersionInfo(v["number"], utc(v["pulp_created"]), len(shas), package_set_digest(shas)))
        return out

    def version_info(self, repo: str, version: int) -> VersionInfo:
        href = self._version_href(repo, version)
        v = self.pulp.call(
            "repositories_rpm_rpm_versions_read",
            f"reading '{repo}' version {version}",
            parameters={"rpm_rpm_repository_version_href": href, "fields": ["pulp_created"]},
        )
        shas = self._version_set(href)
        return VersionInfo(version, utc(v["pulp_created"]), len(shas), package_set_digest(shas))

    def version_changes(self, repo: str, base_version: int | None, version: int) -> VersionChanges:
        """What `version` adds to `base_version` and drops from it, from the cached version sets: only
        the added packages are read in full (the cost of the change)."""
        target = self._version_set(self._version_href(repo, version))
        base = self._version_set(self._version_href(repo, base_version)) if base_version is not None else {}
        added_hrefs = [href for sha, href in target.items() if sha not in base]
        added: list[Package] = []
        for batch in batched(added_hrefs, HREF_BATCH):
            added.extend(
                package_of(e)
                for e in self.pulp.list(
                    "content_rpm_packages_list",
                    f"reading the packages '{repo}' version {version} adds",
                    {"pulp_href__in": list(batch), "fields": PACKAGE_FIELDS},
                )
            )
        return VersionChanges(
            sorted(added, key=lambda p: (p.location, p.sha256)), sorted(sha for sha in base if sha not in target)
        )

    def list_packages(self, repo: str, version: int) -> list[Package]:
        href = self._version_href(repo, version)
        pkgs = [
            package_of(e)
            for e in self.pulp.list(
                "content_rpm_packages_list",
                f"listing packages of '{repo}' version {version}",
                {"repository_version": href, "fields": PACKAGE_FIELDS},
            )
        ]
        return sorted(pkgs, key=lambda p: (p.location, p.sha256))

    # === package sets ===============================================================================
    def _walk_versions(self, r: Entity) -> list[tuple[Entity, dict[str, str]]]:
        """Every version of the repository with its package set {sha256: content href}."""
        versions = sorted(
            self.pulp.list(
                "repositories_rpm_rpm_versions_list",
                f"listing versions of '{r['name']}'",
                {
                    "rpm_rpm_repository_href": r["pulp_href"],
                    "fields": ["pulp_href", "number", "pulp_created", "content_summary"],
                },
            ),
            key=lambda v: v["number"],
        )
        out: list[tuple[Entity, dict[str, str]]] = []
        prev: dict[str, str] | None = None
        for v in versions:
            key = (self.pulp.conn.url, v["pulp_href"])
            shas = _SETS.get(key)
            if shas is None:
                shas = self._apply_summary(prev, v) if prev is not None else None
                if shas is None:
                    shas = self._full_set(v["pulp_href"])
                _SETS.put(key, shas)
            out.append((v, shas))
            prev = shas
        return out

    def _set_query(self, params: Params) -> Iterator[Entity]:
        for e in self.pulp.list("content_rpm_packages_list", "listing packages", dict(params, fields=SET_FIELDS)):
            _remember_filename(self.pulp.conn.url, e)
            yield e

    def _full_set(self, version_href: str) -> dict[str, str]:
        return {sha_of(e): e["pulp_href"] for e in self._set_query({"repository_version": version_href})}

    def _version_set(self, version_href: str) -> dict[str, str]:
        """The version's {sha256: content href}: from its predecessor's cached set and what Pulp says
        the version added and removed when that set is known (the cost follows the change), checked
        against Pulp's count of the version's packages; otherwise listed in full."""
        key = (self.pulp.conn.url, version_href)
        shas = _SETS.get(key)
        if shas is not None:
            return shas
        number = version_number(version_href)
        prev = (
            _SETS.get((self.pulp.conn.url, version_href[: -len(f"{number}/")] + f"{number - 1}/")) if number else None
        )
        if prev is not None:
            v = self.pulp.call(
                "repositories_rpm_rpm_versions_read",
                "reading a repository version",
                parameters={
                    "rpm_rpm_repository_version_href": version_href,
                    "fields": ["pulp_href", "number", "content_summary"],
                },
            )
            shas = self._apply_summary(prev, v)
        if shas is None:
            shas = self._full_set(version_href)
        _SETS.put(key, shas)
        return shas

    def _apply_summary(self, prev: dict[str, str], v: Entity) -> dict[str, str] | None:
        """prev + what version v added - what it removed; None when the result disagrees with Pulp's
        count of v's packages (a version between them was deleted: list v in full instead)."""
        summary = v.get("content_summary") or {}
        shas = dict(prev)
        if "rpm.package" in summary.get("removed", {}):
            for e in self._set_query({"repository_version_removed": v["pulp_href"]}):
                shas.pop(sha_of(e), None)
        if "rpm.package" in summary.get("added", {}):
            for e in self._set_query({"repository_version_added": v["pulp_href"]}):
                shas[sha_of(e)] = e["pulp_href"]
        present = summary.get("present", {}).get("rpm.package", {}).get("count", 0)
        return shas if present == len(shas) else None

    # === content ====================================================================================
    def _content_by_sha(self, shas: Sequence[str]) -> dict[str, str]:
        """{sha256: content href} of the packages Pulp holds already (in any repository)."""
        found: dict[str, str] = {}
        for batch in batched(list(shas), IN_BATCH):
            for e in self.pulp.list(
                "content_rpm_packages_list",
                "looking up packages by checksum",
                {"pkgId__in": list(batch), "fields": SET_FIELDS},
            ):
                found[sha_of(e)] = e["pulp_href"]
        return found
