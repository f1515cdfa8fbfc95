"""Use cases over the catalog: organizations, products, repositories, trust, entitlements."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NotRequired, TypedDict

from sqlalchemy import select

import schemas
from iss_plugin.adapters.backends.base import HoldsMetadataUnits
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import (
    Entitlement,
    Organization,
    Product,
    Repository,
    TrustedSource,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.content_rules import check_sync_url
from iss_plugin.domain.content_units import unit_counts
from iss_plugin.domain.errors import RejectedInput, SchemaViolation, UsageError
from iss_plugin.domain.labels import check_label, check_server_id, make_label
from iss_plugin.domain.trust import organization_map

from . import sync_urls, unit_uploads
from .audit import audit
from .content_guard import refuse_red_hat_uploads
from .repository_events import record_new_version


class OrganizationRow(TypedDict):
    label: str
    name: str


class ProductCreated(TypedDict):
    organization: str
    label: str
    name: str
    redhat: bool
    content_id: str | None


class RepositoryCreated(TypedDict):
    organization: str
    product: str
    label: str
    name: str
    url: str | None


class RepositoryRow(TypedDict):
    product: str
    label: str
    name: str
    redhat: bool
    content_type: str
    version: int
    url: str | None


class RepositoryInfo(sync_urls.SyncUrlFields):
    product: str
    label: str
    name: str
    redhat: bool
    content_type: str
    url: str | None
    version: int
    package_count: int
    package_set_digest: str  # the version digest (packages, and metadata units when it has any)
    units: dict[str, int]  # metadata units by kind
    published_at: str | None
    packages: list[str]  # NEVRAs


class Uploaded(TypedDict):
    repository: str
    version: int
    uploaded: int
    changed: bool
    units: NotRequired[dict[str, int]]  # metadata units uploaded, by kind


class PackagesRemoved(TypedDict):
    repository: str
    version: int
    removed: int


class Synchronized(TypedDict):
    repository: str
    url: str
    version: int
    changed: bool


class TrustedSourceRow(TypedDict):
    name: str
    server_id: str  # the source's server id: a request (`content-import request`) is addressed to it
    fingerprint: str
    organizations: dict[str, str]  # source organization -> organization here


class ManifestImported(TypedDict):
    organization: str
    manifest_id: str
    products: list[str]  # labels


def create_organization(uow: UnitOfWork, name: str, label: str | None, actor: str) -> OrganizationRow:
    label = check_label(label) if label else make_label(name)
    with uow:
        if uow.session.scalar(select(Organization).where(Organization.label == label)):
            raise UsageError(f"organization '{label}' already exists")
        uow.session.add(Organization(label=label, name=name))
        audit(uow.session, actor, "organization.create", label)
        uow.commit()
    return {"label": label, "name": name}


def list_organizations(uow: UnitOfWork) -> list[OrganizationRow]:
    with uow:
        return [
            {"label": o.label, "name": o.name}
            for o in uow.session.scalars(select(Organization).order_by(Organization.label))
        ]


def create_product(
    uow: UnitOfWork, org_label: str, name: str, label: str | None, redhat: bool, content_id: str | None, actor: str
) -> ProductCreated:
    label = check_label(label) if label else make_label(name)
    if redhat and not content_id:
        raise UsageError("a Red Hat product needs --content-id (the content id it comes from)")
    if content_id and not redhat:
        raise UsageError("--content-id is only for Red Hat products (add --redhat)")
    with uow:
        org = find.organization(uow.session, org_label)
        if uow.session.scalar(select(Product).where(Product.organization_id == org.id, Product.label == label)):
            raise UsageError(f"product '{label}' already exists in organization '{org.label}'")
        if content_id:
            holder = uow.session.scalar(
                select(Product).where(Product.organization_id == org.id, Product.content_id == content_id)
            )
            if holder is not None:
                raise UsageError(
                    f"content id {content_id} is already used by product '{holder.label}' in organization "
                    f"'{org.label}': a Red Hat content id names one product (use that product)"
                )
        uow.session.add(Product(organization_id=org.id, label=label, name=name, redhat=redhat, content_id=content_id))
        audit(uow.session, actor, "product.create", f"{org.label}/{label}", redhat=redhat)
        uow.commit()
    return {"organization": org_label, "label": label, "name": name, "redhat": redhat, "content_id": content_id}


def backend_key(org: str, product: str, repository: str) -> str:
    return f"{org}/{product}/{repository}"


def create_repository(
    uow: UnitOfWork,
    org_label: str,
    product_label: str,
    name: str,
    label: str | None,
    url: str | None,
    content_type: str,
    actor: str,
) -> RepositoryCreated:
    label = check_label(label) if label else make_label(name)
    if url is not None:
        check_sync_url(url)
    with uow:
        org = find.organization(uow.session, org_label)
        product = find.product(uow.session, org, product_label)
        if any(r.label == label for r in product.repositories):
            raise UsageError(f"repository '{product_label}/{label}' already exists in organization '{org.label}'")
        if url is not None:
            sync_urls.refuse_red_hat_source(uow.session, org, product, label, url)
        key = backend_key(org.label, product.label, label)
        uow.backend.ensure_repository(key, content_type)
        uow.session.add(
            Repository(
                product_id=product.id,
                label=label,
                name=name,
                content_type=content_type,
                upstream_url=url,
                backend_key=key,
            )
        )
        audit(uow.session, actor, "repository.create", key)
        uow.commit()
    return {"organization": org_label, "product": product_label, "label": label, "name": name, "url": url}


def list_repositories(uow: UnitOfWork, org_label: str) -> list[RepositoryRow]:
    with uow:
        org = find.organization(uow.session, org_label)
        rows: list[RepositoryRow] = []
        for p in org.products:
            for r in p.repositories:
                version = uow.backend.latest_version(r.backend_key)
                rows.append(
                    {
                        "product": p.label,
                        "label": r.label,
                        "name": r.name,
                        "redhat": p.redhat,
                        "content_type": r.content_type,
                        "version": version,
                        "url": r.upstream_url,
                    }
                )
        return rows


def repository_info(uow: UnitOfWork, org_label: str, path: str) -> RepositoryInfo:
    with uow:
        org = find.organization(uow.session, org_label)
        r = find.repository_by_path(uow.session, org, path)
        version = uow.backend.latest_version(r.backend_key)
        packages = uow.backend.list_packages(r.backend_key, version)
        return {
            "product": r.product.label,
            "label": r.label,
            "name": r.name,
            "redhat": r.product.redhat,
            "content_type": r.content_type,
            "url": r.upstream_url,
            "version": version,
            "package_count": len(packages),
            "package_set_digest": uow.backend.version_info(r.backend_key, version).digest,
            "units": unit_counts(uow.backend.list_units(r.backend_key, version))
            if isinstance(uow.backend, HoldsMetadataUnits)
            else {},
            "published_at": r.published_at,
            "packages": sorted(p.nevra for p in packages),
            **sync_urls.url_fields(uow.session, r),
        }


def upload_packages(
    uow: UnitOfWork, org_label: str, path: str, files: Sequence[Path], actor: str, source: str
) -> Uploaded:
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise UsageError("these files do not exist or are not files", missing)
    with uow:
        org = find.organization(uow.session, org_label)
        r = find.repository_by_path(uow.session, org, path)
        from iss_plugin.adapters.content_types import file_problems

        packages, metadata = unit_uploads.split_uploads([Path(f) for f in files])
        problems = file_problems(r.content_type, packages)
        if problems:
            raise RejectedInput(
                f"{len(problems)} of {len(files)} files are not {r.content_type} packages; "
                f"nothing was uploaded to '{path}' (upload only {r.content_type} package files, or "
                "updateinfo.xml, comps.xml and modules.yaml files)",
                problems,
            )
        units = unit_uploads.read_uploaded_units(uow.backend, r.content_type, metadata, path)
        refuse_red_hat_uploads(uow, org, r, packages)
        before = uow.backend.latest_version(r.backend_key)
        version = uow.backend.add_packages(r.backend_key, packages) if packages else before
        if units and isinstance(uow.backend, HoldsMetadataUnits):
            version = uow.backend.add_units(r.backend_key, units)
        if version != before:
            record_new_version(uow, r, version, source)
        audit(uow.session, actor, "repository.upload", r.backend_key, files=len(files), version=version)
        uow.commit()
    result: Uploaded = {"repository": path, "version": version, "uploaded": len(files), "changed": version != before}
    if units:
        result["units"] = unit_counts(units)
    return result


def remove_packages(
    uow: UnitOfWork, org_label: str, path: str, nevras: Sequence[str], actor: str, source: str
) -> PackagesRemoved:
    with uow:
        org = find.organization(uow.session, org_label)
        r = find.repository_by_path(uow.session, org, path)
        before = uow.backend.latest_version(r.backend_key)
        held = {p.nevra: p.sha256 for p in uow.backend.list_packages(r.backend_key, before)}
        unknown = [n for n in nevras if n not in held]
        if unknown:
            raise UsageError(f"repository '{path}' has no such packages", unknown)
        version = uow.backend.remove_packages(r.backend_key, [held[n] for n in nevras])
        if version != before:
            record_new_version(uow, r, version, source)
        audit(uow.session, actor, "repository.remove_packages", r.backend_key, removed=list(nevras), version=version)
        uow.commit()
    return {"repository": path, "version": version, "removed": len(nevras)}


def synchronize(uow: UnitOfWork, org_label: str, path: str, url: str | None, actor: str, source: str) -> Synchronized:
    with uow:
        org = find.organization(uow.session, org_label)
        r = find.repository_by_path(uow.session, org, path)
        sync_url = sync_urls.url_for_sync(uow.session, org, r, url)  # --url: this sync only
        before = uow.backend.latest_version(r.backend_key)
        version = uow.backend.sync(r.backend_key, sync_url, mirror=True)
        if version != before:
            record_new_version(uow, r, version, source)
        r.temporary_sync_url_override = None
        audit(
            uow.session,
            actor,
            "repository.synchronize",
            r.backend_key,
            url=sync_url,
            one_shot=url is not None,
            version=version,
        )
        uow.commit()
    return {"repository": path, "url": sync_url, "version": version, "changed": version != before}


def add_trusted_source(
    uow: UnitOfWork,
    name: str,
    public_pem: str,
    organizations: Sequence[str] | Mapping[str, str],
    actor: str,
    *,
    server_id: str | None = None,
) -> TrustedSourceRow:
    """`organizations`: {source organization: destination organization}; labels alone map to themselves.
    `server_id`: the source's iss server id (default: kept, or the name for a new source)."""
    from iss_plugin.adapters.bundles.signing import fingerprint_of

    fingerprint = fingerprint_of(public_pem)
    mapping = organization_map(organizations)
    if server_id is not None:
        check_server_id(server_id, "--server-id")
    with uow:
        for label in sorted(set(mapping.values())):
            find.organization(uow.session, label)
        existing = uow.session.scalar(select(TrustedSource).where(TrustedSource.fingerprint == fingerprint))
        if existing and existing.name != name:
            raise UsageError(f"that key is already trusted as '{existing.name}'")
        ts = existing or uow.session.scalar(select(TrustedSource).where(TrustedSource.name == name))
        if ts is None:
            ts = TrustedSource(name=name, public_key=public_pem, fingerprint=fingerprint, organizations={})
            uow.session.add(ts)
        ts.public_key, ts.fingerprint = public_pem, fingerprint
        ts.organizations = dict(sorted((organization_map(ts.organizations) | mapping).items()))
        if server_id is not None:
            ts.server_id = server_id
        audit(
            uow.session, actor, "trust.add", name, fingerprint=fingerprint, organizations=mapping, server_id=ts.address
        )
        uow.commit()
        return {"name": name, "server_id": ts.address, "fingerprint": fingerprint, "organizations": ts.organizations}


def list_trusted_sources(uow: UnitOfWork) -> list[TrustedSourceRow]:
    with uow:
        return [
            {"name": t.name, "server_id": t.address, "fingerprint": t.fingerprint, "organizations": t.organizations}
            for t in find.trusted_sources(uow.session)
        ]


def import_entitlement_manifest(uow: UnitOfWork, path: Path, actor: str) -> ManifestImported:
    """The Red Hat products an organization may hold; creates those Red Hat products if missing.
    All or nothing: any problem refuses the whole manifest."""
    data = _read_manifest_file(Path(path))
    problems = schemas.problems("entitlements.v1.json", data)
    if problems or not isinstance(data, dict):  # the schema makes it an object
        raise SchemaViolation(
            f"manifest file {path} does not match schemas/entitlements.v1.json; nothing imported", problems
        )
    duplicates = _duplicates(data["products"], "content_id") + _duplicates(data["products"], "label")
    if duplicates:
        raise RejectedInput(
            f"manifest file {path} lists the same product more than once; nothing imported "
            "(each content_id and each label may appear once)",
            duplicates,
        )
    with uow:
        org = find.organization(uow.session, data["organization"])
        existing = {
            e.content_id: e
            for e in uow.session.scalars(select(Entitlement).where(Entitlement.organization_id == org.id))
        }
        products = {p.label: p for p in org.products}
        by_content_id = {p.content_id: p for p in org.products if p.redhat and p.content_id}
        conflicts = []
        for item in data["products"]:
            label, content_id = item["label"], item["content_id"]
            p = products.get(label)
            if p is not None and (not p.redhat or p.content_id != content_id):
                conflicts.append(
                    f"product '{label}' exists here as "
                    f"{'custom' if not p.redhat else 'Red Hat content id ' + str(p.content_id)}"
                )
            other = by_content_id.get(content_id)
            if other is not None and other.label != label:
                conflicts.append(
                    f"content id {content_id} (product '{label}') is already Red Hat product '{other.label}' here"
                )
            e = existing.get(content_id)
            if e is not None and e.product_label != label and (other is None or other.label != e.product_label):
                conflicts.append(
                    f"content id {content_id} (product '{label}') is already entitled as product "
                    f"'{e.product_label}' (manifest {e.manifest_id})"
                )
        if conflicts:
            raise RejectedInput(
                f"manifest {data['manifest_id']} conflicts with products of '{org.label}'; nothing imported", conflicts
            )
        for item in data["products"]:
            e = existing.get(item["content_id"])
            if e is None:
                uow.session.add(
                    Entitlement(
                        organization_id=org.id,
                        content_id=item["content_id"],
                        product_label=item["label"],
                        product_name=item["name"],
                        manifest_id=data["manifest_id"],
                    )
                )
            if item["label"] not in products:
                uow.session.add(
                    Product(
                        organization_id=org.id,
                        label=item["label"],
                        name=item["name"],
                        redhat=True,
                        content_id=item["content_id"],
                    )
                )
        audit(
            uow.session,
            actor,
            "manifest.import",
            org.label,
            manifest_id=data["manifest_id"],
            content_ids=[p["content_id"] for p in data["products"]],
        )
        uow.commit()
    return {
        "organization": data["organization"],
        "manifest_id": data["manifest_id"],
        "products": [p["label"] for p in data["products"]],
    }


def _read_manifest_file(path: Path) -> object:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"manifest file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"manifest path {path} is a directory: give the manifest's JSON file") from None
    except OSError as e:
        raise UsageError(f"cannot read manifest file {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RejectedInput(
            f"manifest file {path} is not UTF-8 text (byte {e.start}); nothing imported: "
            "give the JSON entitlement manifest"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RejectedInput(f"manifest file {path} is not JSON: {e}; nothing imported") from None


def _duplicates(items: list[object], key: str) -> list[str]:
    seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(key), str):
            seen[item[key]] = seen.get(item[key], 0) + 1
    return [f"{key} '{value}' appears {n} times" for value, n in seen.items() if n > 1]
