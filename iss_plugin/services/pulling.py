"""Pull (phase 3): a destination asks a source's stream for the content view version it lacks.

The base is the newest version of the content view held here (the destination says what it has,
the source sends only what the base lacks). The stream is read once, checked while it arrives
(adapters/bundles/stream_reader.py: the signature before anything else, every file's sha256 before
it is kept), extracted under the import work directory, then imported by the same service as any
bundle (services/importing.py: atomic; its temporary files removed whatever happens). A version
held already is not asked for again: pulling it twice is a no-op."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypedDict

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import NotFound
from iss_plugin.domain.trust import organization_map
from iss_plugin.domain.versions import VersionNumber

from .importing import ImportRequest, ImportSummary, import_bundle, mapped_organization

# (query parameters of the source's stream) -> its body, or None when the source has nothing to send
OpenStream = Callable[[Mapping[str, str]], BinaryIO | None]


@dataclass(frozen=True)
class PullRequest:
    organization: str  # the source's organization label (trusted sources map it to one here)
    content_view: str
    version: VersionNumber | None = None  # None: the source's latest


class PullResult(TypedDict):
    state: str  # "imported" | "already_imported"
    organization: str
    content_view: str
    base: str | None
    imported: ImportSummary | None


def pull_content_view(
    uow: UnitOfWork,
    request: PullRequest,
    *,
    open_stream: OpenStream,
    work_dir: Path,
    display: str,
    actor: str,
    announced: Mapping[str, object] | None = None,
    before_commit: Callable[[UnitOfWork, ImportSummary], None] | None = None,
) -> PullResult:
    """`announced` and `before_commit`: as for import_bundle (the import worker pulling a stream an
    event announced: the signed manifest must agree with the event; the answer commits with the import)."""
    from iss_plugin.adapters.bundles.reader import TrustedKey, _check_signature
    from iss_plugin.adapters.bundles.stream_reader import read_tar_stream

    org_label = mapped_organization(uow, request.organization)
    with uow:
        held = _held_versions(uow, org_label, request.content_view)
        rows = find.trusted_sources(uow.session)
        trusted = [
            TrustedKey(
                t.name, t.public_key, t.fingerprint, tuple(sorted(set(organization_map(t.organizations).values())))
            )
            for t in rows
        ]
    result = PullResult(
        state="already_imported", organization=org_label, content_view=request.content_view, base=None, imported=None
    )
    if request.version is not None and request.version in held:
        return result | {"base": str(request.version)}
    older = [v for v in held if request.version is None or v < request.version]
    base = str(max(older)) if older else None
    params = {"organization": request.organization, "content_view": request.content_view}
    if request.version is not None:
        params["version"] = str(request.version)
    if base:
        params["base"] = base
    body = open_stream(params)
    if body is None:
        return result | {"base": base}

    def seal(manifest: bytes, signature: bytes) -> None:
        _check_signature(manifest, signature, trusted, org_label)

    with body:
        opened = read_tar_stream(body, display, work_dir, seal=seal)
    with opened:
        summary = import_bundle(
            uow,
            ImportRequest(org_label, opened.root, "content_view_version", announced=announced),
            work_dir=work_dir,
            actor=actor,
            before_commit=before_commit,
        )
    return result | {"state": str(summary.get("state", "imported")), "base": base, "imported": summary}


def _held_versions(uow: UnitOfWork, org_label: str, content_view: str) -> list[VersionNumber]:
    org = find.organization(uow.session, org_label)
    try:
        cv = find.content_view(uow.session, org, content_view)
    except NotFound:
        return []
    return [VersionNumber.parse(v.number) for v in cv.versions]
