"""GET /api/v1/bundles and GET /api/v1/bundles/{id}/download (range requests, ETag = sha256).

A download is authorized by a Bearer token with export_content in the bundle's organization, or by
a destination's signed request (adapters/bundles/request_signing.py) for a bundle addressed to it."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from iss_plugin.adapters.bundles import request_signing
from iss_plugin.adapters.bundles.chunks import load_toc, parse_chunk_name, toc_name_for
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden
from iss_plugin.services import bundle_files
from iss_plugin.web.auth import authorize, caller, iss_app

from .models import ERRORS, BundleOut
from .ranges import Segment, Unsatisfiable, parse_range, read_range

router = APIRouter(prefix="/api/v1", tags=["bundles"], responses=ERRORS)


class DigestCache:
    """sha256 of archives (the ETag), computed once per file version (path, size, mtime)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._known:
                return self._known[key]
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        with self._lock:
            self._known[key] = h.hexdigest()
        return h.hexdigest()


@router.get("/bundles", response_model=list[BundleOut])
def list_bundles(
    request: Request,
    organization: str | None = Query(default=None, max_length=128),
    who: policy.Identity = Depends(caller),
    app: App = Depends(iss_app),
) -> list[BundleOut]:
    """Written bundles the caller may download (export_content), newest first."""
    if organization:
        authorize(app, request, who, policy.EXPORT_CONTENT, organization)
        visible: frozenset[str] | None = frozenset({organization})
    else:
        policy.check_somewhere(who, policy.EXPORT_CONTENT)
        visible = policy.visible_organizations(who, policy.EXPORT_CONTENT)
    return [
        BundleOut(**row, download=f"/api/v1/bundles/{row['bundle_id']}/download")
        for row in bundle_files.list_bundles(app.uow(), visible)
    ]


def _authorize_download(request: Request, app: App, bundle: bundle_files.StoredBundle) -> None:
    signed = request_signing.parse(request.headers.get("authorization", ""))
    if signed is None:
        who = caller(request, app)
        authorize(app, request, who, policy.EXPORT_CONTENT, bundle.organization)
        return
    name, public_pem = bundle_files.destination_key(app.uow(), signed.server_id)
    request_signing.check(signed, public_pem, request.method, request.url.path)
    if not bundle_files.may_fetch(app.uow(), name, bundle):
        raise Forbidden(
            f"bundle {bundle.bundle_id} is neither addressed to destination '{name}' nor shared content it subscribes to"
        )


def _segments(bundle: bundle_files.StoredBundle) -> tuple[list[Segment], str | None, str]:
    """(the archive's files in order, its sha256 if known, its name)."""
    chunk = parse_chunk_name(bundle.path.name)
    if chunk is None:
        return [Segment(bundle.path, bundle.path.stat().st_size)], None, bundle.path.name
    archive = chunk[0]
    toc = load_toc(bundle.path.parent / toc_name_for(archive), 16 << 20)
    segments = [Segment(bundle.path.parent / c["name"], c["size"]) for c in toc["chunks"]]
    return segments, toc["sha256"], archive


def _directory_stream(root: Path) -> Iterator[bytes]:
    from iss_plugin.adapters.bundles.stream import bundle_entries, tar_gz_stream
    from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest

    data = (root / MANIFEST_NAME).read_bytes()
    signature = (root / SIGNATURE_NAME).read_bytes()
    manifest = BundleManifest.from_dict(json.loads(data))
    return tar_gz_stream(bundle_entries(root, data, signature, manifest.files), mtime=0)


@router.get(
    "/bundles/{bundle_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the archive"},
        206: {"content": {"application/octet-stream": {}}, "description": "the requested range"},
        416: {"description": "the range lies outside the archive"},
    },
)
def download(bundle_id: str, request: Request, app: App = Depends(iss_app)) -> Response:
    """The bundle's archive (a directory bundle as a tar.gz made on the fly, without ranges).
    `Range: bytes=a-b` resumes a download (206); ETag is the archive's sha256."""
    bundle = bundle_files.stored_bundle(app.uow(), bundle_id)
    _authorize_download(request, app, bundle)
    if bundle.path.is_dir():
        headers = {"Content-Disposition": f'attachment; filename="{bundle.path.name}.tar.gz"', "Accept-Ranges": "none"}
        return StreamingResponse(_directory_stream(bundle.path), media_type="application/octet-stream", headers=headers)
    segments, digest, name = _segments(bundle)
    size = sum(s.size for s in segments)
    digests: DigestCache = request.app.state.bundle_digests
    etag = f'"{digest or digests.sha256(bundle.path)}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Disposition": f'attachment; filename="{name}"'}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range and if_range != etag:
        wanted = None  # the archive changed since the client's first part: send it whole
    try:
        span = parse_range(wanted, size)
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = span or (0, size - 1)
    headers["Content-Length"] = str(last - first + 1 if size else 0)
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    body = read_range(segments, first, last) if size else iter(())
    return StreamingResponse(
        body, status_code=206 if span else 200, media_type="application/octet-stream", headers=headers
    )
