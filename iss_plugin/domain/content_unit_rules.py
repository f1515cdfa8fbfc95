"""The rules for metadata units (advisories, groups, modules), as pure functions.

- Two units of one kind with the same key and different content cannot be in one version
  (pulp_rpm's rule for advisories: an advisory id means one advisory).
- An import never drops an advisory the destination already holds in the version it builds on.
- An advisory naming packages the version does not hold is reported (not refused: upstream
  repositories often carry advisories for packages of other repositories)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .content_units import ADVISORY, MetadataUnit
from .errors import ImportRuleViolation, RejectedInput


def duplicate_key_problems(units: Iterable[MetadataUnit]) -> list[str]:
    """One problem per key held with two different contents, naming both digests."""
    first: dict[tuple[str, str], str] = {}
    problems = []
    for u in units:
        seen = first.setdefault((u.kind, u.key), u.digest)
        if seen != u.digest:
            problems.append(f"{u.kind} {u.key}: {seen} and {u.digest}")
    return sorted(set(problems))


def refuse_duplicate_keys(units: Iterable[MetadataUnit], where: str) -> None:
    """RejectedInput (exit 3) when `units` hold one key with two contents."""
    problems = duplicate_key_problems(units)
    if problems:
        raise RejectedInput(
            f"{where}: {len(problems)} ids name two different units (an advisory id, group id or module "
            "must mean one thing in a version); nothing was changed. Remove the old one or give the "
            "new one another id",
            problems,
            details={"duplicates": problems},
        )


def dropped_advisories(before: Iterable[MetadataUnit], after: Iterable[MetadataUnit]) -> list[str]:
    """Ids of the advisories `before` holds that `after` lacks."""
    kept = {u.key for u in after if u.kind == ADVISORY}
    return sorted({u.key for u in before if u.kind == ADVISORY and u.key not in kept})


def refuse_dropped_advisories(problems: Sequence[str]) -> None:
    if problems:
        raise ImportRuleViolation(
            f"{len(problems)} advisories the destination holds would be dropped by this import; an import "
            "never removes an advisory from a repository's lineage, nothing was imported (export a version "
            "that still carries them, or remove them here first on purpose)",
            list(problems),
        )


def short_nevra(nevra: str) -> str:
    """name-[epoch:]version-release.arch with a 0 epoch left out (as Package.nevra writes it)."""
    parts = nevra.rsplit("-", 2)
    if len(parts) == 3 and parts[1].startswith("0:"):
        parts[1] = parts[1][2:]
    return "-".join(parts)


def advisories_missing_packages(units: Iterable[MetadataUnit], nevras: Iterable[str]) -> list[str]:
    """'<advisory>: <nevra>, ...' for every advisory naming packages the version does not hold."""
    held = {short_nevra(n) for n in nevras}
    out = []
    for u in sorted(units, key=lambda x: x.key):
        if u.kind != ADVISORY:
            continue
        missing = [n for n in u.packages if short_nevra(n) not in held]
        if missing:
            out.append(f"advisory {u.key} names packages the version does not hold: {', '.join(missing)}")
    return out
