"""POST /api/v1/imports/push: an online destination receives a source's bundle stream (phase 3).

Authenticated by the SOURCE's signed request (adapters/bundles/push.py): `Authorization:
Iss-Ed25519 server="<the source's key fingerprint>", time=..., signature=...` over POST and the
path with its query. A destination knows its trusted sources by key (`iss trust add`), so the
source names its key by fingerprint; the signature is checked against that trusted source's key
before a byte of the body is read: a wrong or unknown one is 401 and nothing is imported. The body
(the tar GET /api/v1/bundles/stream serves) is read once while it arrives and imported atomically
(services/pushing.py); the answer is 200 {"state": "imported" | "rejected", "answer": <the data of
iss.bundle.imported.v1 / iss.bundle.rejected.v1>}, the rejection with its reason."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.from_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from iss_plugin.adapters.bundles import request_signing
from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import NotAuthenticated
from iss_plugin.domain.jsontypes import JSONObject

from .models import ERRORS
from .streams import signed_target

router = APIRouter(prefix="/api/v1", tags=["bundles"], responses=ERRORS)


class _Body(io.RawIOBase):
    """The request body as a blocking file, for the import running in a worker thread."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    async def _next(self) -> bytes:
        return await self.chunks.__anext__()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = anyio.from_thread.run(self._next)
            except StopAsyncIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


@router.post(
    "/imports/push",
    responses={200: {"description": '{"state": "imported" | "rejected", "answer": {...}}'}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the bundle's tar, as GET /api/v1/bundles/stream serves it",
        }
    },
)
async def push(request: Request, organization: str = Query(max_length=128)) -> JSONResponse:
    """Import a bundle stream a trusted source pushes (its signed request)."""
    # here, not at import: the import machinery (importing, pulling, httpx) costs a server that
    # only serves streams several MiB of RSS (issue 12's bound)
    from iss_plugin.services import pushing

    app: App = request.app.state.iss
    signed = request_signing.parse(request.headers.get("authorization", ""))
    if signed is None:
        raise NotAuthenticated("a push must be signed by a trusted source (Authorization: Iss-Ed25519 ...)")
    public_pem = await anyio.to_thread.run_sync(pushing.source_key, app.uow(), signed.server_id)
    request_signing.check(signed, public_pem, "POST", signed_target(request.url.path, request.url.query))
    body = io.BufferedReader(_Body(request.stream().__aiter__()), 1 << 20)
    fingerprint = signed.server_id

    def receive() -> tuple[str, JSONObject]:
        try:
            return pushing.receive_push(
                app.uow(),
                body,
                organization,
                fingerprint=fingerprint,
                ctx=app.destination_context(),
                display=f"the push from {fingerprint}",
            )
        finally:  # a refusal before the end: read the rest, so the source gets the answer, not a reset
            with contextlib.suppress(Exception):  # the client gone: nothing to answer
                while body.read(1 << 20):
                    pass

    state, answer = await anyio.to_thread.run_sync(receive)
    return JSONResponse({"state": state, "answer": answer})
