"""Which organization a trusted source's bundle goes into (Spacewalk ISS style): each trusted
source carries a mapping {source organization: destination organization}. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import UntrustedSource, UsageError


def organization_map(stored: object) -> dict[str, str]:
    """The mapping as stored: a dict; a list of labels (before migration 0005) means identity."""
    if isinstance(stored, Mapping):
        return {str(k): str(v) for k, v in stored.items()}
    if isinstance(stored, (list, tuple)):
        return {str(o): str(o) for o in stored}
    return {}


def parse_maps(organizations: Iterable[str], maps: Iterable[str]) -> dict[str, str]:
    """`--organization ORG` (ORG->ORG) and `--map SRC=DST` options as one mapping."""
    mapping = {o: o for o in organizations}
    problems = []
    for text in maps:
        src, sep, dst = text.partition("=")
        src, dst = src.strip(), dst.strip()
        if not sep or not src or not dst:
            problems.append(f"--map '{text}': give SOURCE_ORG=DESTINATION_ORG (for example ACME=ACME-Lab)")
        elif mapping.get(src, dst) != dst:
            problems.append(f"--map '{text}': organization '{src}' is already mapped to '{mapping[src]}'")
        else:
            mapping[src] = dst
    if problems:
        raise UsageError("bad organization mapping; nothing was changed", problems)
    if not mapping:
        raise UsageError("give at least one --organization ORG or --map SOURCE_ORG=DESTINATION_ORG")
    return mapping


def destination_organization(source_name: str, mapping: Mapping[str, str], source_organization: str) -> str:
    """Where a bundle of `source_organization` signed by `source_name` goes; UntrustedSource if nowhere."""
    dest = mapping.get(source_organization)
    if dest is None:
        pairs = ", ".join(f"{s}->{d}" for s, d in sorted(mapping.items())) or "none"
        raise UntrustedSource(
            f"bundle of organization '{source_organization}' from source '{source_name}' is refused: that "
            f"source may feed only the organizations mapped for it ({pairs}); nothing was imported; to accept it: "
            f"iss trust add --name {source_name} --public-key KEY --map {source_organization}=DESTINATION_ORG",
            details={"source": source_name, "organization": source_organization},
        )
    return dest
