"""GET /api/v1/bundles/stream: a bundle made on the fly from the content store (phase 3).

The body is the bundle's tar (or `format=tgz`): manifest.json and its signature first, then the
repodata, then only the package files the `base` lacks; nothing is written outside the content
store but products.csv, staged while the response lasts (the repodata is kept in the store).
Authorized by a destination's signed request (the path AND query are signed, so a captured header
opens this one stream only) for a content view or repository it is subscribed to, or by a Bearer
token with export_content in the organization.

Resume: the tar is deterministic for a plan (services/streaming.py), its ETag is the manifest's
sha256 and its length is known before the first byte, so `Range: bytes=a-` (with `If-Range:
<ETag>`) regenerates the stream from `a` (206): the headers before it are laid out again, the
files wholly before it are not read. A tar.gz is sent whole (no ranges). The
destination already holding the version (`base` = `version`): 204, no body."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from iss_plugin.adapters.bundles import request_signing
from iss_plugin.adapters.bundles.stream import byte_range, tar_gz_stream, tar_size, tar_stream_from
from iss_plugin.adapters.db.models import Destination, Subscription
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.services import bundle_files, streaming
from iss_plugin.web.auth import authorize, caller

from .models import ERRORS
from .ranges import Unsatisfiable, parse_range

router = APIRouter(prefix="/api/v1", tags=["bundles"], responses=ERRORS)


def signed_target(path: str, query: str) -> str:
    """What a stream request signs: its path and its query string."""
    return f"{path}?{query}" if query else path


def _destination(request: Request, app: App, wanted: streaming.StreamRequest) -> str | None:
    """The destination asking (signed request), checked against its subscriptions; None for a user."""
    signed = request_signing.parse(request.headers.get("authorization", ""))
    if signed is None:
        who = caller(request, app)
        authorize(app, request, who, policy.EXPORT_CONTENT, wanted.organization)
        return None
    name, public_pem = bundle_files.destination_key(app.uow(), signed.server_id)
    request_signing.check(signed, public_pem, request.method, signed_target(request.url.path, request.url.query))
    with app.uow() as uow:
        found = uow.session.scalar(
            select(Subscription.id)
            .join(Destination, Destination.id == Subscription.destination_id)
            .where(
                Destination.name == name,
                Subscription.organization == wanted.organization,
                Subscription.content_view == (wanted.content_view or ""),
                Subscription.product == (wanted.product or ""),
                Subscription.repository == (wanted.repository or ""),
            )
        )
    if found is None:
        what = wanted.content_view or f"{wanted.product}/{wanted.repository}"
        raise Forbidden(f"destination '{name}' is not subscribed to {what} in organization {wanted.organization}")
    return name


@router.get(
    "/bundles/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-tar": {}}, "description": "the bundle"},
        204: {"description": "the base is the version asked for: nothing to send"},
        206: {"content": {"application/x-tar": {}}, "description": "the requested range of the tar"},
        416: {"description": "the range lies outside the tar"},
    },
)
def stream(
    request: Request,
    organization: str = Query(max_length=128),
    content_view: str | None = Query(default=None, max_length=128),
    version: str | None = Query(default=None, max_length=32),
    product: str | None = Query(default=None, max_length=128),
    repository: str | None = Query(default=None, max_length=128),
    base: str | None = Query(default=None, max_length=32),
    format: Literal["tar", "tgz"] = Query(default="tar"),
) -> Response:
    """The bundle of `content_view` `version` (or of `product`/`repository`) relative to `base`."""
    app: App = request.app.state.iss
    wanted = streaming.StreamRequest(
        organization,
        content_view=content_view,
        version=VersionNumber.parse(version) if version else None,
        product=product,
        repository=repository,
        base=base,
    )
    wanted = replace(wanted, destination=_destination(request, app, wanted))
    planned = streaming.plan_stream(
        app.uow(), wanted, signer=app.signer, server_id=app.server_id, staging_root=app.settings.data_dir / "staging"
    )
    if planned is None:
        return Response(status_code=204)
    etag = f'"{planned.etag}"'
    name = f"{planned.manifest.bundle_id}.{format}"
    headers = {"ETag": etag, "Content-Disposition": f'attachment; filename="{name}"'}
    cleanup = BackgroundTask(planned.close)
    if format == "tgz":
        headers["Accept-Ranges"] = "none"
        body = _closing(tar_gz_stream(planned.entries()), planned)
        return StreamingResponse(body, media_type="application/gzip", headers=headers, background=cleanup)
    entries = planned.laid_out()
    size = tar_size(entries)
    headers["Accept-Ranges"] = "bytes"
    wanted_range = request.headers.get("range")
    if request.headers.get("if-range") not in (None, etag):
        wanted_range = None  # the plan changed since the client's first part: send it whole
    try:
        span = parse_range(wanted_range, size)
    except Unsatisfiable:
        planned.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = span or (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    body = _closing(byte_range(tar_stream_from(entries, first), 0, last - first), planned)
    return StreamingResponse(
        body, status_code=206 if span else 200, media_type="application/x-tar", headers=headers, background=cleanup
    )


def _closing(pieces: Iterator[bytes], planned: streaming.PlannedStream) -> Iterator[bytes]:
    """`pieces`, then the staged metadata removed (also when the client goes away mid-way)."""
    try:
        yield from pieces
    finally:
        planned.close()
