"""Pure export planning: what a destination lacks, given what it has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InconsistentPlan
from .manifest import VersionRef
from .packages import Package, package_set_digest


@dataclass(frozen=True)
class RepositoryExportPlan:
    product: str
    repository: str
    target: VersionRef
    base: VersionRef | None
    new_packages: tuple[Package, ...]  # files the bundle must carry
    removed: tuple[str, ...]  # sha256 of base packages not in the target

    @property
    def kind(self) -> str:
        return "incremental" if self.base else "full"


def version_ref(version: int, packages: Sequence[Package]) -> VersionRef:
    return VersionRef(version, len(packages), package_set_digest(p.sha256 for p in packages))


def plan_repository_export(
    product: str,
    repository: str,
    target_version: int,
    target: Sequence[Package],
    base_version: int | None = None,
    base: Sequence[Package] | None = None,
) -> RepositoryExportPlan:
    """Full when there is no base; otherwise only the packages the base does not hold (by sha256)."""
    base_sha = {p.sha256 for p in base} if base is not None else set()
    target_sha = {p.sha256 for p in target}
    new = tuple(sorted((p for p in target if p.sha256 not in base_sha), key=lambda p: p.location))
    removed = tuple(sorted(base_sha - target_sha))
    return RepositoryExportPlan(
        product=product,
        repository=repository,
        target=version_ref(target_version, target),
        base=version_ref(base_version, base) if base is not None and base_version is not None else None,
        new_packages=new,
        removed=removed,
    )


def plan_from_changes(
    product: str,
    repository: str,
    target: VersionRef,
    base: VersionRef | None,
    added: Sequence[Package],
    removed: Sequence[str],
) -> RepositoryExportPlan:
    """The same plan from what a backend says changed, without listing both versions (cost of the change)."""
    if base is None and removed:
        raise InconsistentPlan(
            f"{product}/{repository}: a full export removes nothing, but {len(removed)} removed packages were given"
        )
    if base is not None and base.package_count + len(added) - len(removed) != target.package_count:
        raise InconsistentPlan(
            f"{product}/{repository}: base {base.package_count} + {len(added)} - {len(removed)} "
            f"is not the target's {target.package_count} packages"
        )
    return RepositoryExportPlan(
        product, repository, target, base, tuple(sorted(added, key=lambda p: p.location)), tuple(sorted(removed))
    )


def target_after_import(base: Sequence[Package], added: Sequence[Package], removed: Sequence[str]) -> list[Package]:
    """The package set an incremental bundle yields on top of its base."""
    gone = set(removed)
    by_sha = {p.sha256: p for p in base if p.sha256 not in gone}
    for p in added:
        by_sha[p.sha256] = p
    return sorted(by_sha.values(), key=lambda p: p.location)
