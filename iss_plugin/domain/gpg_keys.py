"""Product GPG keys on import: which key each product ends with, and which package files must be
signed by it. Pure: the keys' fingerprints are read by adapters.signatures before these rules run.

The rule (docs/architecture.md, section 6):
- a product whose bundle entry carries a key and which has none here gets that key;
- a product that has a key here keeps it; a bundle key must be the same key (the same set of
  primary key fingerprints: armor, comments and packet order do not matter), else the import is
  refused. An admin who wants the new key sets it here first (`iss product set-gpg-key`);
- every package file the bundle carries for a product that ends with a key must be signed by it
  (also when the bundle itself carries no key: the destination's key is its policy)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ImportRuleViolation
from .manifest import BundleManifest


@dataclass(frozen=True)
class ProductKey:
    """An ASCII-armored OpenPGP public key (one or more certificates) and its primary fingerprints."""

    armored: str
    fingerprints: tuple[str, ...]  # upper-case hex, sorted

    @classmethod
    def of(cls, armored: str, fingerprints: Iterable[str]) -> ProductKey:
        return cls(armored, tuple(sorted({f.upper() for f in fingerprints})))

    def same_key(self, other: ProductKey) -> bool:
        return self.fingerprints == other.fingerprints


@dataclass(frozen=True)
class KeyDecision:
    """For one destination product: the key its packages must be signed by (None: no check) and
    whether that key is new here (to be stored on the product with the import)."""

    product: str
    key: ProductKey | None
    store: bool = False


def decide_product_keys(
    bundle_keys: Mapping[str, ProductKey | None],
    existing_keys: Mapping[str, ProductKey | None],
) -> dict[str, KeyDecision]:
    """bundle_keys: destination product label -> the key its bundle entry carries;
    existing_keys: destination product label -> its key here (absent or None: no key, or a new
    product). Raises ImportRuleViolation naming every product whose keys differ."""
    decisions: dict[str, KeyDecision] = {}
    problems: list[str] = []
    for product, carried in sorted(bundle_keys.items()):
        held = existing_keys.get(product)
        if held is None:
            decisions[product] = KeyDecision(product, carried, store=carried is not None)
        elif carried is None or carried.same_key(held):
            decisions[product] = KeyDecision(product, held)
        else:
            problems.append(
                f"product '{product}': the bundle carries GPG key {', '.join(carried.fingerprints)}, "
                f"this server has {', '.join(held.fingerprints)} (to accept the new key, run "
                f"`iss product set-gpg-key` here first)"
            )
    if problems:
        raise ImportRuleViolation(
            "the bundle's product GPG keys differ from this server's; nothing was imported", problems
        )
    return decisions


def packages_to_verify(manifest: BundleManifest, keyed_products: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """manifest product label -> the bundle paths of the package files of its repositories, for
    every product in keyed_products (the manifest labels of products that end with a key)."""
    keyed = set(keyed_products)
    prefixes = {f"{r.path.rstrip('/')}/": r.product for r in manifest.repositories if r.product in keyed}
    found: dict[str, list[str]] = {p: [] for p in sorted({*prefixes.values()})}
    for f in manifest.files:
        if not f.path.endswith(".rpm"):
            continue
        product = next((p for prefix, p in prefixes.items() if f.path.startswith(prefix)), None)
        if product is not None:
            found[product].append(f.path)
    return {p: tuple(sorted(paths)) for p, paths in found.items()}
