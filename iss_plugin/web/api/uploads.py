"""PUT /api/v1/uploads/{name}: a bundle streamed to disk in chunks, size-limited, its sha256 checked.

The body goes to `<import dir>/uploads/.<name>.part` while it is hashed; only a body whose sha256
equals the client's `X-Content-SHA256` is renamed to `<import dir>/uploads/<name>`, where
POST /api/v1/imports {"upload": name} finds it. Anything else leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import re

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import BundleIntegrityError, UsageError
from iss_plugin.web.auth import iss_app, require

from .models import ERRORS, Problem, UploadOut
from .transfers import UPLOADS

router = APIRouter(prefix="/api/v1", tags=["bundles"], responses=ERRORS)
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def too_large(app: App) -> HTTPException:
    return HTTPException(413, f"the upload is larger than web_max_upload_mb ({app.settings.web_max_upload_mb} MiB)")


@router.put(
    "/uploads/{name}",
    response_model=UploadOut,
    status_code=201,
    responses={413: {"model": Problem, "description": "larger than web_max_upload_mb"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    request: Request,
    name: str = Path(pattern=NAME, max_length=201),
    organization: str | None = Query(default=None, max_length=128, description="checked: import_content in it"),
    x_content_sha256: str = Header(description="sha256 (hex) of the body, checked before the upload is kept"),
    who: policy.Identity = Depends(require(policy.IMPORT_CONTENT)),
    app: App = Depends(iss_app),
) -> UploadOut:
    """Upload a bundle (the raw bytes of a .tar.gz or .iso) to import later."""
    expected = x_content_sha256.strip().lower()
    if not SHA256.match(expected):
        raise UsageError("X-Content-SHA256 must be the 64 hex digits of the body's sha256")
    limit = app.settings.web_max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(app)
    folder = app.settings.imports_path / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    final, part = folder / name, folder / f".{name}.part"
    if final.exists():
        raise UsageError(f"an upload named '{name}' exists already; choose another name")
    digest, size = hashlib.sha256(), 0
    try:
        with open(part, "xb") as fh:
            async for block in request.stream():
                size += len(block)
                if size > limit:
                    raise too_large(app)
                digest.update(block)
                await anyio.to_thread.run_sync(fh.write, block)
        if digest.hexdigest() != expected:
            raise BundleIntegrityError(
                f"upload '{name}' has sha256 {digest.hexdigest()}, X-Content-SHA256 says {expected}; nothing was kept"
            )
        os.replace(part, final)
    except FileExistsError:
        raise UsageError(f"an upload named '{name}' is in progress; wait, or choose another name") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return UploadOut(name=name, size=size, sha256=expected)
