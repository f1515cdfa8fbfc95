"""Metadata units: what a yum repository holds beyond packages, as immutable values.

An advisory (updateinfo), a comps group, category, environment or langpacks entry, a modulemd
document or its defaults: each is one unit, identified as Pulp does by its natural key (advisory
id, group id, name:stream:version:context:arch, ...) and a digest of its content. A version holds
a set of units besides its packages; its identity (the version digest) covers both."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .manifest import UnitSummary

ADVISORY = "advisory"
GROUP = "group"
CATEGORY = "category"
ENVIRONMENT = "environment"
LANGPACKS = "langpacks"
MODULEMD = "modulemd"
MODULEMD_DEFAULTS = "modulemd_defaults"
MODULEMD_OTHER = "modulemd_other"  # obsoletes, translations: kept and carried, keyed by digest
KINDS = (ADVISORY, GROUP, CATEGORY, ENVIRONMENT, LANGPACKS, MODULEMD, MODULEMD_DEFAULTS, MODULEMD_OTHER)


@dataclass(frozen=True, slots=True)
class MetadataUnit:
    """One unit. `body` is its canonical text (an XML element, a YAML document), opaque here;
    `packages` the NEVRAs it names (an advisory's package list), for the rules."""

    kind: str
    key: str
    digest: str
    body: str
    packages: tuple[str, ...] = ()


def unit_digest(kind: str, body: str) -> str:
    """sha256 over the kind and the canonical body: two units are the same unit iff this matches."""
    return "sha256:" + hashlib.sha256(f"{kind}\n{body}".encode()).hexdigest()


def make_unit(kind: str, key: str, body: str, packages: Iterable[str] = ()) -> MetadataUnit:
    return MetadataUnit(kind, key, unit_digest(kind, body), body, tuple(sorted(set(packages))))


def units_digest(digests: Iterable[str]) -> str | None:
    """sha256 over the sorted unit digests, one per line; None for no units at all."""
    unique = sorted(set(digests))
    if not unique:
        return None
    return "sha256:" + hashlib.sha256("".join(d + "\n" for d in unique).encode("ascii")).hexdigest()


def version_digest(package_digest: str, unit_set_digest: str | None) -> str:
    """A version's identity: its package set digest alone when it holds no metadata units (so
    every version made before units existed keeps its digest), else both digests hashed together."""
    if unit_set_digest is None:
        return package_digest
    return "sha256:" + hashlib.sha256(f"{package_digest}\n{unit_set_digest}\n".encode("ascii")).hexdigest()


def unit_counts(units: Iterable[MetadataUnit]) -> dict[str, int]:
    return dict(sorted(Counter(u.kind for u in units).items()))


def replace_by_key(current: Iterable[MetadataUnit], incoming: Iterable[MetadataUnit]) -> list[MetadataUnit]:
    """current with every unit of the same kind and key as an incoming one replaced by it (an
    additive sync: the remote is right about the units it lists)."""
    new = list(dict.fromkeys(incoming))
    keys = {(u.kind, u.key) for u in new}
    return [u for u in current if (u.kind, u.key) not in keys] + new


def unit_summary(target: Sequence[MetadataUnit], base: Sequence[MetadataUnit] | None) -> UnitSummary | None:
    """What a bundle's manifest says of a target's units (None when it has none)."""
    digest = units_digest(u.digest for u in target)
    if digest is None:
        return None
    in_base = {u.digest for u in base or ()}
    return UnitSummary(unit_counts(target), unit_counts(u for u in target if u.digest not in in_base), digest)
