"""A custom product never receives Red Hat content: packages uploaded or imported into a custom
repository are refused when a Red Hat repository of the organization holds the same bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from iss_plugin.adapters.db.content_models import RepositorySet
from iss_plugin.adapters.db.models import Organization, Repository
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.content_rules import IncomingPackage, red_hat_packages_refused
from iss_plugin.domain.errors import ImportRuleViolation, IssError, RejectedInput
from iss_plugin.domain.manifest import BundleManifest


def red_hat_holders(uow: UnitOfWork, org: Organization) -> dict[str, str]:
    """sha256 -> 'product/repository' for every package in any version of a Red Hat repository of
    the organization (enabled ones, and imported ones that are disabled)."""
    keys = {r.backend_key: f"{p.label}/{r.label}" for p in org.products if p.redhat for r in p.repositories}
    for s in uow.session.scalars(select(RepositorySet).where(RepositorySet.organization_id == org.id)):
        keys.setdefault(s.backend_key, f"{s.product_label}/{s.repository_label}")
    holders: dict[str, str] = {}
    for key, name in sorted(keys.items()):
        try:
            versions = uow.backend.list_versions(key)
        except IssError:  # a disabled set whose store repository is gone holds nothing
            continue
        for v in versions:
            for package in uow.backend.list_packages(key, v.number):
                holders.setdefault(package.sha256.lower(), name)
    return holders


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def refuse_red_hat_uploads(uow: UnitOfWork, org: Organization, repo: Repository, files: Sequence[Path]) -> None:
    """RejectedInput (exit 3) naming each file that came from a Red Hat repository."""
    if repo.product.redhat:
        return
    holders = red_hat_holders(uow, org)
    if not holders:
        return
    incoming = [IncomingPackage(Path(f).name, _sha256(Path(f))) for f in files]
    target = f"{repo.product.label}/{repo.label}"
    problems = red_hat_packages_refused(target, incoming, holders)
    if problems:
        raise RejectedInput(
            f"{len(problems)} of {len(files)} files are Red Hat packages: a custom product never receives "
            f"Red Hat content; nothing was uploaded to '{target}'",
            problems,
        )


def refuse_red_hat_in_bundle(uow: UnitOfWork, org: Organization, manifest: BundleManifest) -> None:
    """ImportRuleViolation (exit 3) when a custom repository of the bundle carries a package file a
    Red Hat repository of this organization holds."""
    custom = {p.label for p in manifest.products if not p.redhat}
    prefixes = {
        r.path.rstrip("/") + "/": f"{r.product}/{r.label}" for r in manifest.repositories if r.product in custom
    }
    if not prefixes:
        return
    holders = red_hat_holders(uow, org)
    problems: list[str] = []
    for prefix, target in prefixes.items():
        incoming = [
            IncomingPackage(f.path, f.sha256)
            for f in manifest.files
            if f.path.startswith(prefix) and not f.path.startswith(prefix + "repodata/")
        ]
        problems += red_hat_packages_refused(target, incoming, holders)
    if problems:
        raise ImportRuleViolation(
            f"bundle {manifest.bundle_id} carries Red Hat packages in custom repositories; nothing was imported",
            problems,
        )
