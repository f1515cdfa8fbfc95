"""Which organization a trusted source's bundle goes into (Spacewalk ISS style): each trusted
source carries a mapping {source organization: destination organization}. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class KnownSource:
    """A trusted source as a request sees it: its name here, the server id requests are addressed
    to, and its organization map."""

    name: str
    server_id: str
    organizations: Mapping[str, str]


@dataclass(frozen=True)
class RequestTarget:
    name: str  # the trusted source's name here
    server_id: str  # what the request is addressed to
    organization: str  # the organization here its organization maps to


def choose_source(sources: Iterable[KnownSource], organization: str, named: str | None) -> RequestTarget:
    """The trusted source a destination's request for `organization` (its label on the source)
    goes to: `named` (a trusted source's name, `--source`), else the one source server whose map
    has the organization (entries of one server, such as an old and a new key during a key
    rotation, count once, when they map it alike). Raises UsageError saying what to do."""
    known = list(sources)
    names = ", ".join(f"{s.name} (server {s.server_id})" for s in known) or "none"
    if named is not None:
        chosen = next((s for s in known if s.name == named), None)
        if chosen is None:
            raise UsageError(
                f"--source '{named}' is not a trusted source here (trusted: {names}); nothing was requested; "
                "see `iss trust list`"
            )
        if organization not in chosen.organizations:
            raise UsageError(
                f"trusted source '{named}' does not map organization '{organization}' to one here; nothing was "
                f"requested; add the mapping: iss trust add --name {named} --public-key KEY --map {organization}=LOCAL_ORG"
            )
        return RequestTarget(chosen.name, chosen.server_id, chosen.organizations[organization])
    mapping = [s for s in known if organization in s.organizations]
    if not mapping:
        raise UsageError(
            f"organization '{organization}' is not mapped to one here by any trusted source ({names}); nothing was "
            f"requested; see `iss trust list`, or add the mapping: iss trust add ... --map {organization}=LOCAL_ORG"
        )
    targets = {(s.server_id, s.organizations[organization]) for s in mapping}
    if len(targets) > 1:
        which = ", ".join(
            f"{s.name} (server {s.server_id}, into {s.organizations[organization]})"
            for s in sorted(mapping, key=lambda s: s.name)
        )
        raise UsageError(
            f"organization '{organization}' is fed by several trusted sources here: {which}; nothing was requested; "
            "name the one to ask with --source NAME"
        )
    first = sorted(mapping, key=lambda s: s.name)[0]
    return RequestTarget(first.name, first.server_id, first.organizations[organization])
