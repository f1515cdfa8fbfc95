"""A bundle planned for streaming (phase 3): what a destination lacks, sealed, with no archive on disk.

`plan_stream` plans like an export (the same selection, trees and manifest as services/exporting),
stages only products.csv (the backend ExportsByReference: package files are read from the store
where they lie, and the repodata it writes there too), seals the manifest and lists the bundle's files in stream order: manifest.json,
its signature, the metadata, then the package files. The caller sends them as a tar and closes the
plan (which removes what it staged).

The plan is deterministic for a given (source, organization, content view, version, base,
destination): the bundle id is derived from them and `created` is the version's own time, so the
same request yields the same manifest bytes, the same tar bytes, and the same ETag (the manifest's
sha256): a range request regenerates the stream and skips to its offset."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from iss_plugin.adapters.backends.base import ExportsByReference, StreamsByReference
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import ContentView, ContentViewVersion
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.manifest import PRODUCTS_CSV, BundleManifest, ContentViewRef, FileEntry
from iss_plugin.domain.versions import VersionNumber

from . import exporting as ex
from .unit_checks import with_unit_summaries

if TYPE_CHECKING:
    from iss_plugin.adapters.bundles.signing import Signer
    from iss_plugin.adapters.bundles.stream import Entry

_NAMESPACE = uuid.UUID("6f1d8a52-4b7e-4f0c-9d43-1a2b3c4d5e6f")  # streamed bundle ids (uuid5)


@dataclass(frozen=True)
class StreamRequest:
    organization: str
    content_view: str | None = None  # a content view version ...
    version: VersionNumber | None = None  # None: the latest
    product: str | None = None  # ... or a repository
    repository: str | None = None
    base: str | None = None  # what the destination holds: "A.B", or a repository version number
    destination: str | None = None


@dataclass
class PlannedStream:
    """A sealed bundle to stream."""

    manifest: BundleManifest
    manifest_bytes: bytes
    signature: bytes
    files: list[FileEntry]  # in stream order (metadata, then package files)
    sources: dict[str, str]  # files the store keeps (package files, repodata): where
    staging: Path

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    def entries(self) -> Iterator[Entry]:
        from iss_plugin.adapters.bundles.stream import Entry
        from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME

        yield Entry(MANIFEST_NAME, len(self.manifest_bytes), data=self.manifest_bytes)
        yield Entry(SIGNATURE_NAME, len(self.signature), data=self.signature)
        root = str(self.staging) + "/"
        for f in self.files:
            yield Entry(f.path, f.size, self.sources.get(f.path) or root + f.path)

    def laid_out(self) -> list[Entry]:
        """list(entries()), the plan's own lists then dropped (they and the entries share the path
        and source strings; the FileEntry values and their sha256s, MiBs at 20,000 packages, go):
        for a caller that keeps the entries and needs nothing else of the plan but its manifest's
        header fields and close()."""
        entries = list(self.entries())
        self.manifest = replace(self.manifest, files=())
        self.files, self.sources = [], {}
        return entries

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def plan_stream(
    uow: UnitOfWork, request: StreamRequest, *, signer: Signer, server_id: str, staging_root: Path
) -> PlannedStream | None:
    """Plan and seal the bundle `request` asks for (only products.csv is staged, under staging_root);
    None when the base is the target itself (the destination holds it already: nothing to send)."""
    with uow:
        return plan_stream_in(uow, request, signer=signer, server_id=server_id, staging_root=staging_root)


def plan_stream_in(
    uow: UnitOfWork, request: StreamRequest, *, signer: Signer, server_id: str, staging_root: Path
) -> PlannedStream | None:
    """plan_stream in the caller's open unit of work (the export consumer's push)."""
    from iss_plugin.adapters.bundles.writer import seal_manifest

    staging_root.mkdir(parents=True, exist_ok=True)
    if not isinstance(uow.backend, (ExportsByReference, StreamsByReference)):
        raise UsageError("this server's content backend cannot stream bundles (it does not export by reference)")
    org = find.organization(uow.session, request.organization)
    export = _export_request(request)
    created = None
    cv_ref: ContentViewRef | None = None
    if export.scope == "content_view_version":
        cv, cvv, _, selections = ex._select_content_view(uow, org, replace(export, incremental=False))
        cv_ref, created = ContentViewRef(cv.label, cv.name, cvv.number), cvv.created
        base_label = _cv_base(uow, cv, cvv, request.base)
        if base_label == cvv.number:
            return None
        base_pins = {}
        if base_label is not None:
            base_cvv = find.content_view_version(uow.session, cv, VersionNumber.parse(base_label))
            base_pins = {pin.repository_id: pin.backend_version for pin in base_cvv.repositories}
        selections = [ex.RepoSelection(s.repo, s.target_version, base_pins.get(s.repo.id)) for s in selections]
    else:
        selections = ex._select_repository(uow, org, replace(export, incremental=False))
        target = selections[0].target_version
        base_version = _repository_base(request.base, target)
        if base_version == target:
            return None
        selections = [replace(selections[0], base_version=base_version)]
        base_label = f"repository-version-{base_version}" if base_version is not None else None
    kind: Literal["full", "incremental"] = "incremental" if base_label else "full"
    bundle_id = stream_bundle_id(server_id, org.label, request, base_label)
    staging = staging_root / f".stream-{uuid.uuid4()}"
    try:
        plans, trees = ex._write_trees(uow, selections, staging, ex._no_progress, by_reference=True, for_stream=True)
        ex._write_products_csv(staging, selections)
        manifest = ex._manifest(
            bundle_id, server_id, signer.fingerprint, org.label, export, cv_ref, base_label, kind, selections, plans
        )
        if created is not None:
            manifest = replace(manifest, created=ex._aware(created).isoformat().replace("+00:00", "Z"))
        del plans  # their Package values (MiBs at 20,000): the manifest keeps their counts
        manifest = with_unit_summaries(
            uow.backend, manifest, [(s.repo.backend_key, s.target_version, s.base_version) for s in selections]
        )
        sources = {path: source for tree in trees for path, source in tree.sources.items()}
        staged = [FileEntry(PRODUCTS_CSV, *_digest(staging / PRODUCTS_CSV))]
        known = staged + [f for tree in trees for f in tree.files]
        packages = {f.path for tree in trees for f in tree.files[: tree.new_packages]}
        del trees  # before sealing, the plan's high-water mark (the lists above share their values)
        manifest, data, signature = seal_manifest(manifest, signer, known)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the metadata (staged, or kept in the store by the backend) before the package files
    files = sorted(manifest.files, key=lambda f: (f.path in packages, f.path))
    return PlannedStream(manifest, data, signature, files, sources, staging)


def stream_bundle_id(server_id: str, org_label: str, request: StreamRequest, base_label: str | None) -> str:
    """The id of the bundle a stream of `request` from `base_label` carries (known before it is planned)."""
    export = _export_request(request)
    return str(uuid.uuid5(_NAMESPACE, "|".join(map(str, (server_id, org_label, export, base_label)))))


def _export_request(request: StreamRequest) -> ex.ExportRequest:
    if request.content_view and (request.product or request.repository):
        raise UsageError("stream a content view (content_view) or a repository (product, repository), not both")
    if request.content_view:
        return ex.ExportRequest(
            request.organization,
            "content_view_version",
            incremental=False,
            content_view=request.content_view,
            version=request.version,
            destination=request.destination,
            fmt="tgz",
        )
    if not (request.product and request.repository):
        raise UsageError("a stream needs content_view (with version) or product and repository")
    return ex.ExportRequest(
        request.organization,
        "repository",
        incremental=False,
        product=request.product,
        repository=request.repository,
        destination=request.destination,
        fmt="tgz",
    )


def _cv_base(uow: UnitOfWork, cv: ContentView, cvv: ContentViewVersion, base: str | None) -> str | None:
    if not base:
        return None
    base_cvv = find.content_view_version(uow.session, cv, VersionNumber.parse(base))
    if (base_cvv.major, base_cvv.minor) > (cvv.major, cvv.minor):
        raise UsageError(f"the base version {base_cvv.number} is newer than the streamed version {cvv.number}")
    return base_cvv.number


def _repository_base(base: str | None, target: int) -> int | None:
    if not base:
        return None
    try:
        number = int(base)
    except ValueError:
        raise UsageError(f"the base of a repository stream is a repository version number, not '{base}'") from None
    if number > target:
        raise UsageError(f"the base version {number} is newer than the repository's latest version {target}")
    return number


def _digest(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)
