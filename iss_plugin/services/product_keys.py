"""Product GPG keys: set, remove and show the public key a product's packages are signed with, and
the import's side of it (which key each product ends with; its package files signed by it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iss_plugin.adapters import signatures
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import Organization, Product
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import BundleIntegrityError, UsageError
from iss_plugin.domain.gpg_keys import KeyDecision, ProductKey, decide_product_keys, packages_to_verify
from iss_plugin.domain.manifest import BundleManifest
from iss_plugin.domain.rules import ImportPlan

from .audit import audit


def set_product_gpg_key(
    uow: UnitOfWork, org_label: str, product_label: str, key_file: Path | None, actor: str
) -> dict[str, Any]:
    """Set the product's key from an ASCII-armored public key file, or remove it (key_file None).
    A file that is not a public key gpg and rpm accept: UsageError (exit 2), nothing changed."""
    key = _read_key_file(key_file) if key_file is not None else None
    with uow:
        org = find.organization(uow.session, org_label)
        product = find.product(uow.session, org, product_label)
        store_key(product, key)
        audit(
            uow.session,
            actor,
            "product.gpg_key.set" if key else "product.gpg_key.remove",
            f"{org.label}/{product.label}",
            fingerprints=list(key.fingerprints) if key else [],
        )
        uow.commit()
        return product_info_of(product)


def product_info(uow: UnitOfWork, org_label: str, product_label: str) -> dict[str, Any]:
    with uow:
        org = find.organization(uow.session, org_label)
        return product_info_of(find.product(uow.session, org, product_label))


def product_info_of(product: Product) -> dict[str, Any]:
    return {
        "organization": product.organization.label,
        "label": product.label,
        "name": product.name,
        "redhat": product.redhat,
        "content_id": product.content_id,
        "gpg_key": product.gpg_key_fingerprints or None,
        "repositories": [r.label for r in product.repositories],
    }


def store_key(product: Product, key: ProductKey | None) -> None:
    product.gpg_key = key.armored if key else None
    product.gpg_key_fingerprints = " ".join(key.fingerprints) if key else None


def key_of(product: Product | None) -> ProductKey | None:
    if product is None or not product.gpg_key:
        return None
    return ProductKey.of(product.gpg_key, (product.gpg_key_fingerprints or "").split())


def _read_key_file(path: Path) -> ProductKey:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read GPG key file {path}: {e}; give an ASCII-armored public key file") from None
    try:
        return ProductKey.of(text, signatures.validate_public_key(text))
    except signatures.NotAPublicKey as e:
        raise UsageError(
            f"{path} is not a usable GPG public key: {e}; export one with `gpg --armor --export KEYID`"
        ) from None


# --- import --------------------------------------------------------------------------------------


def decide_import_keys(
    products: dict[str, Product], manifest: BundleManifest, plan: ImportPlan
) -> dict[str, KeyDecision]:
    """Destination product label -> its key decision, for every product the import places into.
    products: this organization's products by label. Raises ImportRuleViolation on a key mismatch
    and BundleIntegrityError on a bundle key gpg or rpm cannot read."""
    carried: dict[str, ProductKey | None] = {}
    for pl in plan.placements:
        armored = manifest.product(pl.manifest_product).gpg_key
        carried[pl.product] = _bundle_key(pl.manifest_product, armored) if armored else None
    return decide_product_keys(carried, {label: key_of(products.get(label)) for label in carried})


def check_package_signatures(
    manifest: BundleManifest, plan: ImportPlan, decisions: dict[str, KeyDecision], root: Path
) -> None:
    """Every package file the bundle carries for a product with a key is signed by that key, or
    BundleIntegrityError naming each file and why."""
    key_by_manifest_product = {
        pl.manifest_product: decisions[pl.product].key
        for pl in plan.placements
        if decisions.get(pl.product) and decisions[pl.product].key
    }
    problems: list[str] = []
    for product, files in packages_to_verify(manifest, key_by_manifest_product).items():
        key = key_by_manifest_product[product]
        assert key is not None
        problems += signatures.find_bad_signatures(root, files, key.armored)
    if problems:
        raise BundleIntegrityError(
            f"bundle {manifest.bundle_id}: {len(problems)} package(s) not validly signed by their product's "
            "GPG key; nothing was imported",
            problems[:200],
        )


def store_decided_keys(org: Organization, decisions: dict[str, KeyDecision]) -> None:
    """Give products that had no key the key their bundle carried (inside the import's transaction)."""
    products = {p.label: p for p in org.products}
    for d in decisions.values():
        if d.store:
            store_key(products[d.product], d.key)


def _bundle_key(product: str, armored: str) -> ProductKey:
    try:
        return ProductKey.of(armored, signatures.validate_public_key(armored))
    except signatures.NotAPublicKey as e:
        raise BundleIntegrityError(f"the bundle's GPG key for product '{product}' is unusable: {e}") from None
