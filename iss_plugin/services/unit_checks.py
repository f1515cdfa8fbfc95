"""Metadata units (advisories, comps, modules) in exports and imports: the manifest's summary of
them, and the rules an import applies to them (domain.content_unit_rules) before anything changes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from iss_plugin.adapters.backends.base import ContentBackend, HoldsMetadataUnits
from iss_plugin.adapters.content_types import ContentType, get_content_type, metadata_units_of
from iss_plugin.adapters.db.models import Organization
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.content_unit_rules import (
    advisories_missing_packages,
    dropped_advisories,
    duplicate_key_problems,
)
from iss_plugin.domain.content_units import ADVISORY, MetadataUnit, unit_summary
from iss_plugin.domain.errors import ImportRuleViolation, IssError
from iss_plugin.domain.manifest import BundleManifest, RepositoryEntry
from iss_plugin.domain.rules import ImportPlan

from .catalog import backend_key

# (backend key, target version, base version or None) of each repository, in manifest order
Selection = tuple[str, int, int | None]


def with_unit_summaries(
    backend: ContentBackend, manifest: BundleManifest, selections: Sequence[Selection]
) -> BundleManifest:
    """The manifest with each repository's `units` summary, when the backend holds units."""
    if not isinstance(backend, HoldsMetadataUnits):
        return manifest
    repos = []
    for entry, (key, target, base) in zip(manifest.repositories, selections, strict=True):
        base_units = backend.list_units(key, base) if base is not None else None
        repos.append(replace(entry, units=unit_summary(backend.list_units(key, target), base_units)))
    return replace(manifest, repositories=tuple(repos))


def advisory_warnings(backend: ContentBackend, key: str, version: int) -> list[str]:
    """Advisories of a version naming packages it does not hold (none without units)."""
    if not isinstance(backend, HoldsMetadataUnits):
        return []
    advisories = [u for u in backend.list_units(key, version) if u.kind == ADVISORY]
    if not advisories:
        return []
    return advisories_missing_packages(advisories, [p.nevra for p in backend.list_packages(key, version)])


def _tree_nevras(ct: ContentType, tree: Path) -> list[str]:
    def fetch_local(url: str, dest: Path, *_: str | int | None) -> None:
        shutil.copyfile(url2pathname(urlsplit(url).path), dest)

    with tempfile.TemporaryDirectory() as tmp:
        return [u.nevra for u in ct.read_remote_index(tree.resolve().as_uri(), fetch_local, Path(tmp))]


def _held_units(uow: UnitOfWork, key: str) -> list[MetadataUnit]:
    """The units of the destination's latest version of `key` (none if it has no such repository)."""
    backend = uow.backend
    if not isinstance(backend, HoldsMetadataUnits):
        return []
    try:
        return backend.list_units(key, backend.latest_version(key))
    except IssError:
        return []


def _summary_problems(entry: RepositoryEntry, units: Sequence[MetadataUnit]) -> list[str]:
    """What differs between the manifest's summary of the units and the units in the repodata."""
    promised, found = entry.units, unit_summary(units, None)
    if promised is None:
        return []
    if found is None or (promised.counts, promised.digest) != (found.counts, found.digest):
        has = f"{found.counts} ({found.digest})" if found else "none"
        return [
            f"{entry.path}: the manifest promises units {promised.counts} ({promised.digest}), the repodata holds {has}"
        ]
    return []


def check_bundle_units(
    uow: UnitOfWork, org: Organization, manifest: BundleManifest, plan: ImportPlan, root: Path, *, dry_run: bool
) -> list[str]:
    """Refuse (ImportRuleViolation, every problem at once) a bundle whose units break the rules:
    one id with two contents in a version, an advisory this server holds that the import would
    drop, units that are not what the manifest says. Returns warnings: with dry_run, advisories
    naming packages the target does not hold (reading every package's metadata costs time, so
    only a dry run does)."""
    entries = {(r.product, r.label): r for r in manifest.repositories}
    problems: list[str] = []
    warnings: list[str] = []
    for pl in plan.placements:
        entry = entries[(pl.manifest_product, pl.manifest_repository)]
        ct = get_content_type(entry.content_type)
        holder = metadata_units_of(ct)
        if holder is None:
            continue
        tree = root / entry.path
        units = holder.read_tree_units(tree)
        problems += [f"{entry.path}: {p}" for p in duplicate_key_problems(units)]
        if entry.units is not None:  # older bundles (and other backends) say nothing: the digest decides
            problems += _summary_problems(entry, units)
        held = _held_units(uow, backend_key(org.label, pl.product, pl.repository))
        problems += [
            f"{pl.product}/{pl.repository}: advisory {a} is held here and missing from the bundle"
            for a in dropped_advisories(held, units)
        ]
        if dry_run:
            missing = advisories_missing_packages(units, _tree_nevras(ct, tree))
            warnings += [f"{pl.product}/{pl.repository}: {w}" for w in missing]
    if problems:
        raise ImportRuleViolation(
            f"bundle {manifest.bundle_id}: its advisories, groups or modules break the import rules; nothing was "
            "imported (an id means one advisory in a version, and an import never drops an advisory held here)",
            problems,
        )
    return warnings
