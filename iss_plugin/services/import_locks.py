"""Which imports must not run at the same time (several import workers on one database).

Two imports conflict when they write the same content view, create the same product, or write
the same repository (its next version, its repository set). Each import takes a PostgreSQL
advisory lock per such thing, in sorted order (no deadlock), before it reads the snapshot it plans
from; imports of different views into different repositories run in parallel. On SQLite the
writer is single: nothing to do."""

from __future__ import annotations

from sqlalchemy import select

from iss_plugin.adapters.db.locks import advisory_xact_lock
from iss_plugin.adapters.db.models import Organization, Product
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.manifest import BundleManifest


def lock_import_targets(uow: UnitOfWork, org_label: str, manifest: BundleManifest) -> None:
    s = uow.session
    if s.get_bind().dialect.name != "postgresql":
        return
    # plain rows, not org.products: the session must not keep a collection read before the locks
    rows = s.execute(
        select(Product.label, Product.content_id).join(Organization).where(Organization.label == org_label)
    ).all()
    labels = {label for label, _ in rows}
    content_ids = {cid for _, cid in rows if cid}
    keys: set[tuple[str, ...]] = set()
    if manifest.content_view:
        keys.add(("view", manifest.content_view.label))
    product_key = {}
    for p in manifest.products:
        redhat = bool(p.redhat and p.content_id)
        product_key[p.label] = f"rh:{p.content_id}" if redhat else f"label:{p.label}"
        if not ((p.content_id in content_ids) if redhat else (p.label in labels)):  # to be created
            keys |= {("product", product_key[p.label]), ("product", f"label:{p.label}")}
    for r in manifest.repositories:
        keys.add(("repository", product_key.get(r.product, f"label:{r.product}"), r.label))
    for key in sorted(keys):
        advisory_xact_lock(s, "iss.import", org_label, *key)
