"""Pull (phase 3): a destination asks a source's stream for the content view version it lacks
(or, announced by the source for a request, a repository's latest version).

The base is the newest version of the content view held here (the destination says what it has,
the source sends only what the base lacks). The stream is read once, checked while it arrives
(adapters/bundles/stream_reader.py: the signature before anything else, every file's sha256 before
it is kept), extracted in the backend's work area inside its content store (ReceivesInStore: the
local store) or else under the import work directory, then imported by the same service as any
bundle (services/importing.py: atomic; its temporary files removed whatever happens). A version
held already is not asked for again: pulling it twice is a no-op."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypedDict

from iss_plugin.adapters.backends.base import PackageReceiver, ReceivesInStore, ReceivesPackages
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import NotFound
from iss_plugin.domain.trust import organization_map
from iss_plugin.domain.versions import VersionNumber

from .catalog import backend_key
from .importing import ImportRequest, ImportSummary, Scope, import_bundle, mapped_organization

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
    org_label = mapped_organization(uow, request.organization)
    with uow:
        held = _held_versions(uow, org_label, request.content_view)
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
    summary = _pull(
        uow,
        org_label,
        params,
        "content_view_version",
        open_stream=open_stream,
        work_dir=work_dir,
        display=display,
        actor=actor,
        announced=announced,
        before_commit=before_commit,
    )
    if summary is None:
        return result | {"base": base}
    return result | {"state": str(summary.get("state", "imported")), "base": base, "imported": summary}


def pull_repository(
    uow: UnitOfWork,
    organization: str,
    product: str,
    repository: str,
    base: int | None,
    *,
    open_stream: OpenStream,
    work_dir: Path,
    display: str,
    actor: str,
    announced: Mapping[str, object] | None = None,
    before_commit: Callable[[UnitOfWork, ImportSummary], None] | None = None,
) -> ImportSummary | None:
    """A repository's latest version from the source's stream, relative to the source's version
    `base` (its number on the source, which the destination cannot know: the source's announcement
    names it; the signed manifest's base digest must be what is held here, else the import refuses
    it as base_mismatch). None: the source had nothing to send (the base is its latest)."""
    params = {"organization": organization, "product": product, "repository": repository}
    if base is not None:
        params["base"] = str(base)
    return _pull(
        uow,
        mapped_organization(uow, organization),
        params,
        "repository",
        open_stream=open_stream,
        work_dir=work_dir,
        display=display,
        actor=actor,
        announced=announced,
        before_commit=before_commit,
    )


def _pull(
    uow: UnitOfWork,
    org_label: str,
    params: Mapping[str, str],
    scope: Scope,
    *,
    open_stream: OpenStream,
    work_dir: Path,
    display: str,
    actor: str,
    announced: Mapping[str, object] | None,
    before_commit: Callable[[UnitOfWork, ImportSummary], None] | None,
) -> ImportSummary | None:
    """Read the stream `params` ask for (signature first, each file checked as it arrives) and
    import it into `org_label`. None: the source had nothing to send."""
    from iss_plugin.adapters.bundles.reader import TrustedKey, _check_signature
    from iss_plugin.adapters.bundles.stream_reader import read_tar_stream

    with uow:
        rows = find.trusted_sources(uow.session)
        stream_dir = stream_work_dir(uow, work_dir)
        trusted = [
            TrustedKey(
                t.name, t.public_key, t.fingerprint, tuple(sorted(set(organization_map(t.organizations).values())))
            )
            for t in rows
        ]
    body = open_stream(params)
    if body is None:
        return None
    into_store = PackagesIntoStore(uow, org_label)

    def seal(manifest: bytes, signature: bytes) -> None:
        _check_signature(manifest, signature, trusted, org_label)
        into_store.start(manifest)

    try:
        with body:
            opened = read_tar_stream(body, display, stream_dir, seal=seal, receive=into_store.receive)
        with opened:
            into_store.hold()
            return import_bundle(
                uow,
                ImportRequest(org_label, opened.root, scope, announced=announced, held=opened.held),
                work_dir=work_dir,
                actor=actor,
                before_commit=before_commit,
            )
    finally:
        into_store.close()


def stream_work_dir(uow: UnitOfWork, work_dir: Path) -> Path:
    """Where a stream is extracted (inside an open `uow`): the backend's work area in its content
    store when it has one (the repodata and package files then never lie outside the store), else
    `work_dir`."""
    backend = uow.backend
    return backend.incoming_dir() if isinstance(backend, ReceivesInStore) else work_dir


class PackagesIntoStore:
    """With a backend that takes package files one at a time (ReceivesPackages: Pulp), each package
    file of the stream goes into the content store as soon as its sha256 is checked, instead of the
    whole bundle being extracted first (no file larger than a package outside the store). Not when
    GPG keys are involved (the bundle carries one, or a product of the organization has one): the
    import checks package signatures on the files, so they are kept as before."""

    def __init__(self, uow: UnitOfWork, org_label: str) -> None:
        self.uow, self.org_label = uow, org_label
        self.receiver: PackageReceiver | None = None
        self.trees: list[tuple[str, str]] = []  # (tree path + "/", backend key)

    def start(self, manifest: bytes) -> None:
        """Called once the manifest's signature is checked: decide, and open the receiver."""
        with self.uow:
            if not isinstance(self.uow.backend, ReceivesPackages):
                return  # the local store: the manifest is not parsed here (MiBs at 20,000 files)
        try:
            data = json.loads(manifest)
            keyed = any(p.get("gpg_key") for p in data["products"])
            self.trees = [
                (f"{r['path']}/", backend_key(self.org_label, r["product"], r["label"])) for r in data["repositories"]
            ]
            expected = [str(f["sha256"]) for f in data["files"] if self._repository_of(str(f["path"])) is not None]
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # the import's schema check says what is wrong
        with self.uow:
            backend = self.uow.backend
            if not isinstance(backend, ReceivesPackages):
                return
            org = find.organization(self.uow.session, self.org_label)
            if keyed or any(p.gpg_key for p in org.products):
                return  # the import checks package signatures on the files: keep them
        self.receiver = backend.package_receiver(expected)

    def _repository_of(self, path: str) -> str | None:
        if not path.endswith(".rpm"):
            return None
        return next((key for prefix, key in self.trees if path.startswith(prefix)), None)

    def receive(self, path: str, file: Path, sha256: str) -> bool:
        repo = self._repository_of(path) if self.receiver is not None else None
        if self.receiver is None or repo is None:
            return False
        self.receiver.put(repo, file, sha256)
        return True

    def hold(self) -> None:
        if self.receiver is not None:
            self.receiver.hold()

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.close()


def _held_versions(uow: UnitOfWork, org_label: str, content_view: str) -> list[VersionNumber]:
    org = find.organization(uow.session, org_label)
    try:
        cv = find.content_view(uow.session, org, content_view)
    except NotFound:
        return []
    return [VersionNumber.parse(v.number) for v in cv.versions]
