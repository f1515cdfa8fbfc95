"""`iss product export|import --csv` (parity with `hammer csv products`): round-trip safe, every
row checked before anything is written, importing the same file twice changes nothing."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import Organization, Product, Repository
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.content_rules import RedHatSource, red_hat_source_of
from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.products_csv import (
    COLUMNS,
    CONTENT_SET,
    REDHAT,
    REPOSITORY_TYPE,
    REPOSITORY_URL,
    CsvProduct,
    CsvRepository,
    ProductsFile,
    check_header,
    parse_rows,
    to_row,
)

from .audit import audit
from .catalog import backend_key
from .sync_urls import red_hat_sources


def export_products_csv(uow: UnitOfWork, org_label: str, path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--csv {path} is a directory: give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--csv {path}: directory {path.parent} does not exist")
    with uow:
        org = find.organization(uow.session, org_label)
        rows = []
        for p in org.products:
            product = CsvProduct(p.label, p.name, p.description, p.redhat, p.content_id, 0)
            repos = [CsvRepository(p.label, r.label, r.name, r.content_type, r.upstream_url, 0) for r in p.repositories]
            rows += [to_row(org.label, product, r) for r in repos] or [to_row(org.label, product, None)]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"organization": org_label, "csv": str(path), "rows": len(rows)}


def read_products_csv(path: Path, org_label: str, rewrites: list[tuple[str, str]]) -> ProductsFile:
    from iss_plugin.adapters.content_types import content_type_names

    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"--csv {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"--csv {path} is a directory: give the CSV file") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"--csv {path} is not UTF-8 text (byte {e.start}); nothing was written") from None
    try:
        reader = csv.DictReader(text.splitlines())
        check_header(reader.fieldnames)
        return parse_rows(list(reader), org_label, rewrites, content_type_names())
    except csv.Error as e:
        raise UsageError(f"--csv {path} is not CSV ({e}); nothing was written") from None


def import_products_csv(
    uow: UnitOfWork, org_label: str, path: Path, rewrites: list[tuple[str, str]], actor: str
) -> dict[str, Any]:
    wanted = read_products_csv(path, org_label, rewrites)
    with uow:
        org = find.organization(uow.session, org_label)
        _check_against(uow, org, wanted)
        changes = _apply(uow, org, wanted)
        if any(changes.values()):
            audit(
                uow.session,
                actor,
                "product.import_csv",
                org.label,
                organization=org.label,
                csv=str(path),
                changes=changes,
            )
            uow.commit()
    return {"organization": org_label, "csv": str(path), **changes}


def _check_against(uow: UnitOfWork, org: Organization, wanted: ProductsFile) -> None:
    """What the rows ask that this organization refuses; UsageError (exit 2) naming each row."""
    problems: list[str] = []
    products = {p.label: p for p in org.products}
    by_content_id = {p.content_id: p for p in org.products if p.content_id}
    for p in wanted.products:
        have = products.get(p.label)
        if have is not None and (have.redhat, have.content_id) != (p.redhat, p.content_id):
            problems.append(
                f"row {p.row}, column '{REDHAT}': product '{p.label}' exists here as "
                f"{'Red Hat content id ' + str(have.content_id) if have.redhat else 'custom'}"
            )
        other = by_content_id.get(p.content_id) if p.content_id else None
        if other is not None and other.label != p.label:
            problems.append(
                f"row {p.row}, column '{CONTENT_SET}': content id {p.content_id} is product '{other.label}' here"
            )
    sources = red_hat_sources(uow.session, org) + [
        RedHatSource(r.url, f"Red Hat repository {r.product}/{r.label} in row {r.row}")
        for r in wanted.repositories
        if r.url and next(p for p in wanted.products if p.label == r.product).redhat
    ]
    for r in wanted.repositories:
        product = next(p for p in wanted.products if p.label == r.product)
        have_product = products.get(r.product)
        have_repo = next((x for x in have_product.repositories if x.label == r.label), None) if have_product else None
        if have_repo is not None and have_repo.content_type != r.content_type:
            problems.append(
                f"row {r.row}, column '{REPOSITORY_TYPE}': repository '{r.product}/{r.label}' is "
                f"{have_repo.content_type} here"
            )
        source = red_hat_source_of(r.url, sources) if r.url and not product.redhat else None
        if source is not None:
            problems.append(
                f"row {r.row}, column '{REPOSITORY_URL}': '{r.url}' is Red Hat content ({source.what}): "
                f"the custom product '{r.product}' never receives Red Hat content"
            )
    if problems:
        raise UsageError(f"the CSV has {len(problems)} problems; nothing was written", problems)


def _apply(uow: UnitOfWork, org: Organization, wanted: ProductsFile) -> dict[str, list[str]]:
    s = uow.session
    changes: dict[str, list[str]] = {
        "created_products": [],
        "updated_products": [],
        "created_repositories": [],
        "updated_repositories": [],
    }
    products = {p.label: p for p in org.products}
    for p in wanted.products:
        have = products.get(p.label)
        if have is None:
            have = Product(
                organization=org,
                label=p.label,
                name=p.name,
                redhat=p.redhat,
                content_id=p.content_id,
                description=p.description,
            )
            s.add(have)
            products[p.label] = have
            changes["created_products"].append(p.label)
        elif (have.name, have.description) != (p.name, p.description):
            have.name, have.description = p.name, p.description
            changes["updated_products"].append(p.label)
    s.flush()
    for r in wanted.repositories:
        product = products[r.product]
        key = f"{r.product}/{r.label}"
        repo = s.scalar(select(Repository).where(Repository.product_id == product.id, Repository.label == r.label))
        if repo is None:
            bkey = backend_key(org.label, product.label, r.label)
            uow.backend.ensure_repository(bkey, r.content_type)
            s.add(
                Repository(
                    product=product,
                    label=r.label,
                    name=r.name,
                    content_type=r.content_type,
                    upstream_url=r.url,
                    backend_key=bkey,
                )
            )
            changes["created_repositories"].append(key)
        elif (repo.name, repo.upstream_url) != (r.name, r.url):
            repo.name, repo.upstream_url = r.name, r.url
            changes["updated_repositories"].append(key)
    s.flush()
    return changes
