"""Fan-out built once: a content view version going to many destinations that share a base is
exported once per distinct bundle (organization, content view, base, target, format) and every
destination's bundle.ready points at that one file. The source signs the bundle; each destination
verifies the source's signature, so one bundle serves them all (the manifest names no destination).

Bundles live under `<exports>/bundles.shared/key-<fingerprint>` (a server id cannot contain a dot,
so no destination's own directory has that name; a new signing key starts a new directory). A bundle is needed while a subscription has its version in flight
(not yet acknowledged); `collect_bundles` removes the others. Building, reusing and collecting one
bundle take the same advisory lock, so a bundle is never removed between being chosen and the
commit that puts it in flight, and two workers never build the same one."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from sqlalchemy import select

from iss_plugin.adapters.bundles.fetch import file_sha256
from iss_plugin.adapters.db.locks import advisory_xact_lock
from iss_plugin.adapters.db.memo import transaction_memo
from iss_plugin.adapters.db.models import ExportRecord, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork

from . import exporting
from .audit import audit

if TYPE_CHECKING:
    from iss_plugin.adapters.bundles.signing import Signer

SHARED_DIR = "bundles.shared"


def bundle_sha256(path: Path) -> str:
    """The archive's sha256, hashed once per file (not once per destination it is announced to)."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def shared_dir(exports_path: Path) -> Path:
    return exports_path / SHARED_DIR


def key_dir(exports_path: Path, fingerprint: str) -> Path:
    """Shared bundles signed by one key: after a key rotation, older ones are never reused."""
    return shared_dir(exports_path) / f"key-{fingerprint.removeprefix('sha256:')[:16]}"


def export_once(
    uow: UnitOfWork,
    request: exporting.ExportRequest,
    target: str,
    *,
    exports_path: Path,
    signer: Signer,
    server_id: str,
    actor: str,
    staging_root: Path | None = None,
) -> exporting.ExportResult:
    """The bundle of `request` (a content view version, `target` its number): an earlier one of the
    same content if its file is still there, else a new one (in the caller's transaction). Asked
    again in the same transaction (the next subscriber), the answer is the one already given: its
    lock is held and its file is there until the transaction ends."""
    base = request.from_version if request.incremental else None
    parts = _lock_parts(request.organization, request.content_view or "", base, target)
    out_dir = key_dir(exports_path, signer.fingerprint)
    key = (*parts, request.fmt, str(out_dir))
    known: exporting.ExportResult | None = transaction_memo(uow.session).get(key)
    if known is not None:
        return exporting.ExportResult(**known)
    advisory_xact_lock(uow.session, *parts)
    found = _reusable(uow, request, target, base, out_dir) or _export(
        uow, request, out_dir, signer=signer, server_id=server_id, actor=actor, staging_root=staging_root
    )
    transaction_memo(uow.session)[key] = found
    return exporting.ExportResult(**found)


def _export(
    uow: UnitOfWork,
    request: exporting.ExportRequest,
    out_dir: Path,
    *,
    signer: Signer,
    server_id: str,
    actor: str,
    staging_root: Path | None,
) -> exporting.ExportResult:
    request = replace(request, destination=None, path=out_dir)
    return exporting.export_in_transaction(
        uow,
        request,
        out_dir=out_dir,
        signer=signer,
        server_id=server_id,
        actor=actor,
        staging_root=staging_root,
    )


def retire(uow: UnitOfWork, bundle_id: str) -> None:
    """A destination refused the bundle itself (not its base): build the next one afresh rather
    than send this one again; garbage collection removes it once nothing has it in flight."""
    r = uow.session.scalar(select(ExportRecord).where(ExportRecord.bundle_id == bundle_id))
    if r is not None and r.destination is None and r.state == "done":
        r.state = "retired"
    memo = transaction_memo(uow.session)  # nor chosen again for the rest of this transaction
    for key in [k for k, v in memo.items() if isinstance(v, dict) and v.get("bundle_id") == bundle_id]:
        del memo[key]


def _lock_parts(organization: str, content_view: str, base: str | None, target: str) -> tuple[str, ...]:
    return ("iss.bundle", organization, content_view, base or "", target)


def _reusable(
    uow: UnitOfWork, request: exporting.ExportRequest, target: str, base: str | None, out_dir: Path
) -> exporting.ExportResult | None:
    rows = uow.session.scalars(
        select(ExportRecord)
        .where(
            ExportRecord.organization == request.organization,
            ExportRecord.scope == "content_view_version",
            ExportRecord.content_view == request.content_view,
            ExportRecord.version == target,
            ExportRecord.base.is_(None) if base is None else ExportRecord.base == base,
            ExportRecord.format == request.fmt,
            ExportRecord.destination.is_(None),
            ExportRecord.state == "done",
        )
        .order_by(ExportRecord.id.desc())
    )
    for r in rows:
        path = Path(r.path or "")
        if r.path and path.is_file() and path.parent == out_dir:
            return _result(r, path)
    return None


def _result(r: ExportRecord, path: Path) -> exporting.ExportResult:
    repositories: dict[str, exporting.RepositorySummary] = dict(r.summary)
    return {
        "bundle_id": r.bundle_id,
        "path": str(path),
        "format": r.format,
        "kind": r.kind,
        "organization": r.organization,
        "content_view": r.content_view,
        "version": r.version,
        "base": r.base,
        "files": [str(path)],
        "size": path.stat().st_size,
        "repositories": repositories,
    }


class CollectedBundle(TypedDict):
    bundle_id: str
    content_view: str | None
    version: str | None
    path: str
    size: int


def collect_bundles(uow: UnitOfWork, exports_path: Path, actor: str) -> list[CollectedBundle]:
    """Remove shared bundles no subscription has in flight (each in its own short transaction,
    under the bundle's lock). Their export records stay, marked `collected`."""
    with uow:
        ids = list(
            uow.session.scalars(
                select(ExportRecord.id).where(
                    ExportRecord.destination.is_(None), ExportRecord.state.in_(("done", "retired"))
                )
            )
        )
    removed: list[CollectedBundle] = []
    for record_id in ids:
        with uow:
            r = uow.session.get(ExportRecord, record_id)
            if r is None or r.path is None or Path(r.path).parent.parent != shared_dir(exports_path):
                continue
            advisory_xact_lock(uow.session, *_lock_parts(r.organization, r.content_view or "", r.base, r.version or ""))
            if _in_flight(uow, r):
                continue
            path = Path(r.path)
            size = path.stat().st_size if path.is_file() else 0
            r.state, r.finished = "collected", datetime.now(UTC)
            audit(uow.session, actor, "bundle.gc", str(path), bundle_id=r.bundle_id, organization=r.organization)
            uow.commit()
            path.unlink(missing_ok=True)  # after the commit: a failed commit keeps a usable bundle
            removed.append(
                {
                    "bundle_id": r.bundle_id,
                    "content_view": r.content_view,
                    "version": r.version,
                    "path": str(path),
                    "size": size,
                }
            )
    return removed


def _in_flight(uow: UnitOfWork, r: ExportRecord) -> bool:
    return (
        uow.session.scalar(
            select(Subscription.id)
            .where(
                Subscription.organization == r.organization,
                Subscription.content_view == r.content_view,
                Subscription.in_flight == r.version,
            )
            .limit(1)
        )
        is not None
    )
