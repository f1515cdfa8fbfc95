"""Metadata units in Pulp (advisories, comps entries, modulemd documents: domain.content_units).

- Reading: a version's units are read from its publication's repodata (updateinfo, comps, modules,
  written by the filesystem exporter with the version as its own start, so no package files) with
  the same reader the local backend uses, so the same content has the same unit digests on both
  backends. Versions are immutable: the units are cached per version; a version whose content
  summary holds no unit type has none (no export).
- A version's digest covers its units as the local backend's does (domain.content_units.version_digest).
- Writing (add_units): the units' repodata (and an empty package list) staged under the shared
  import directory and synced additively into the repository (one Pulp task), after refusing a key
  the version holds with other content."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from iss_plugin.adapters.backends.base import VersionInfo
from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.adapters.backends.pulp.content import PulpContent
from iss_plugin.adapters.backends.pulp.entities import utc, version_number
from iss_plugin.adapters.backends.pulp.export import PulpExport
from iss_plugin.domain.content_unit_rules import refuse_duplicate_keys
from iss_plugin.domain.content_units import MetadataUnit, units_digest, version_digest
from iss_plugin.domain.errors import ConfigError
from iss_plugin.domain.packages import package_set_digest

# pulp_rpm's content types that are metadata units (content_summary keys)
UNIT_TYPES = frozenset(
    {
        "rpm.advisory",
        "rpm.packagegroup",
        "rpm.packagecategory",
        "rpm.packageenvironment",
        "rpm.packagelangpacks",
        "rpm.modulemd",
        "rpm.modulemd_defaults",
        "rpm.modulemd_obsolete",
    }
)


class _UnitCache:
    """Units of repository versions by (Pulp URL, version href): versions never change."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str], tuple[MetadataUnit, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[MetadataUnit, ...] | None:
        with self._lock:
            return self._d.get(key)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._d.pop(key, None)

    def put(self, key: tuple[str, str], value: tuple[MetadataUnit, ...]) -> None:
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)


_UNITS = _UnitCache()


def holds_units(version: Entity) -> bool:
    """Whether Pulp's content summary of a version lists a metadata unit type."""
    present = (version.get("content_summary") or {}).get("present") or {}
    return bool(UNIT_TYPES & set(present))


class PulpUnits(PulpExport, PulpContent):
    """HoldsMetadataUnits for Pulp, and version digests that cover the units."""

    def list_units(self, repo: str, version: int) -> list[MetadataUnit]:
        href = self._version_href(repo, version)
        return list(self._version_units(repo, version, href, None))

    def _version_units(self, repo: str, version: int, href: str, v: Entity | None) -> tuple[MetadataUnit, ...]:
        key = (self.pulp.conn.url, href)
        cached = _UNITS.get(key)
        if cached is not None:
            return cached
        if v is None:
            v = self._read_version(href, repo, version)
        units: tuple[MetadataUnit, ...] = ()
        if holds_units(v):
            units = tuple(self._published_units(repo, version))
        _UNITS.put(key, units)
        return units

    def _read_version(self, href: str, repo: str, version: int) -> Entity:
        v: Entity = self.pulp.call(
            "repositories_rpm_rpm_versions_read",
            f"reading '{repo}' version {version}",
            parameters={"rpm_rpm_repository_version_href": href, "fields": ["pulp_created", "content_summary"]},
        )
        return v

    def _published_units(self, repo: str, version: int) -> list[MetadataUnit]:
        """The units of the version's published repodata (the exporter, with the version as its own
        base: metadata only)."""
        from iss_plugin.adapters.content_types import get_content_type, metadata_units_of

        holder = metadata_units_of(get_content_type("yum"))
        if holder is None:
            return []
        with tempfile.TemporaryDirectory(prefix="iss-pulp-units-") as tmp:
            dest = Path(tmp) / "tree"
            self.export_version(repo, version, version, dest)
            return sorted(holder.read_tree_units(dest), key=lambda u: (u.kind, u.key, u.digest))

    def _digest(self, repo: str, version: int, href: str, shas: dict[str, str], v: Entity | None) -> str:
        units = self._version_units(repo, version, href, v)
        return version_digest(package_set_digest(shas), units_digest(u.digest for u in units))

    # === overrides of the catalog: digests that cover units ======================================
    def list_versions(self, repo: str) -> list[VersionInfo]:
        r = self._repo(repo, fresh=True)
        out = []
        for v, shas in self._walk_versions(r):
            digest = self._digest(repo, v["number"], v["pulp_href"], shas, v)
            out.append(VersionInfo(v["number"], utc(v["pulp_created"]), len(shas), digest))
        return out

    def version_info(self, repo: str, version: int) -> VersionInfo:
        href = self._version_href(repo, version)
        v = self._read_version(href, repo, version)
        shas = self._version_set(href)
        return VersionInfo(version, utc(v["pulp_created"]), len(shas), self._digest(repo, version, href, shas, v))

    # === writing ==================================================================================
    def add_units(self, repo: str, units: Sequence[MetadataUnit]) -> int:
        r = self._repo(repo, fresh=True)
        latest = version_number(r["latest_version_href"])
        current = self.list_units(repo, latest)
        refuse_duplicate_keys([*current, *units], f"repository '{repo}'")
        held = {u.digest for u in current}
        new = list({u.digest: u for u in units if u.digest not in held}.values())
        if not new:
            return latest
        if self.shared_import_dir is None:
            raise ConfigError(
                "the pulp backend needs pulp.shared_import_dir (under Pulp's ALLOWED_IMPORT_PATHS) to add units"
            )
        stage = self.shared_import_dir / f"iss-units-{uuid.uuid4().hex}"
        try:
            _write_units_tree(stage, new)
            return self._sync_from(r, stage.as_uri() + "/", mirror=False, what=f"{len(new)} metadata units")
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _write_units_tree(root: Path, units: Sequence[MetadataUnit]) -> None:
    """A yum tree of no packages whose repodata carries the units."""
    from iss_plugin.adapters.content_types import get_content_type, metadata_units_of
    from iss_plugin.adapters.content_types.yum import write_repodata

    (root / "repodata").mkdir(parents=True)
    write_repodata(root / "repodata", [])
    holder = metadata_units_of(get_content_type("yum"))
    assert holder is not None  # yum holds units
    holder.write_units(root, units, int(time.time()))
    root.chmod(0o755)
