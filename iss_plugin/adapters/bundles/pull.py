"""Pulling a bundle from a source's /api/v1/bundles/stream (phase 3), read while it arrives.

`StreamClient(url, signer, server_id).open(params)` signs the request (path and query) with this
server's key and answers a ResumingBody (None for 204: nothing to send). The body is read by
stream_reader.read_tar_stream; a connection lost mid-way continues with `Range: bytes=<received>-`
and `If-Range: <ETag>` (the tar is deterministic for a plan) up to RESUMES times; a source whose
plan changed meanwhile (200 instead of 206) ends the pull (BundleIntegrityError: pull again)."""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import BinaryIO

import httpx

from iss_plugin.domain.errors import BundleIntegrityError, IssError, NotAuthenticated, TransientError

from . import request_signing
from .signing import Signer

STREAM_PATH = "/api/v1/bundles/stream"
RESUMES = 3
_TIMEOUT = httpx.Timeout(30.0, read=300.0)


class StreamClient:
    def __init__(self, base_url: str, signer: Signer, server_id: str, *, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.signer, self.server_id = signer, server_id
        self.client = httpx.Client(timeout=_TIMEOUT, transport=transport)

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def open(self, params: Mapping[str, str]) -> BinaryIO | None:
        query = urllib.parse.urlencode(params)
        body = ResumingBody(self, f"{STREAM_PATH}?{query}")
        return io.BufferedReader(body, 1 << 20) if body.start() else None

    def request(self, target: str, headers: Mapping[str, str]) -> httpx.Response:
        auth = request_signing.authorization(self.signer, self.server_id, "GET", target)
        try:
            response = self.client.send(
                self.client.build_request("GET", self.base_url + target, headers={**headers, "Authorization": auth}),
                stream=True,
            )
        except httpx.TransportError as e:
            raise TransientError(f"cannot reach {self.base_url}: {e}") from None
        if response.status_code in (200, 204, 206):
            return response
        response.read()
        response.close()
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text[:300]
        error = f"{self.base_url} refused the stream ({response.status_code}): {message}"
        if response.status_code in (401, 403):
            raise NotAuthenticated(error)
        if response.status_code >= 500:
            raise TransientError(error)
        raise IssError(error)


class ResumingBody(io.RawIOBase):
    """The response body as a file, continued with a range request when the connection breaks."""

    def __init__(self, client: StreamClient, target: str) -> None:
        self.source, self.target = client, target
        self.received = 0
        self.resumes = 0
        self.etag = ""
        self.response: httpx.Response | None = None
        self.pieces: Iterator[bytes] = iter(())
        self.pending = b""

    def start(self) -> bool:
        response = self.source.request(self.target, {})
        if response.status_code == 204:
            response.close()
            return False
        self.etag = response.headers.get("etag", "")
        self._use(response)
        return True

    def _use(self, response: httpx.Response) -> None:
        if self.response is not None:
            self.response.close()
        self.response = response
        self.pieces = response.iter_raw()  # as it arrives: a chunker would lose what it held at a break

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self.pending:
            try:
                self.pending = next(self.pieces, b"")
            except (httpx.TransportError, httpx.StreamError) as e:
                self._resume(e)
                continue
            if not self.pending:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.received += n
        return n

    def _resume(self, error: Exception) -> None:
        self.resumes += 1
        if self.resumes > RESUMES or not self.etag:
            raise TransientError(f"the stream from {self.source.base_url} broke: {error}") from None
        response = self.source.request(self.target, {"Range": f"bytes={self.received}-", "If-Range": self.etag})
        if response.status_code != 206 or not response.headers.get("content-range", "").startswith(
            f"bytes {self.received}-"
        ):
            response.close()
            raise BundleIntegrityError(
                f"the stream from {self.source.base_url} cannot be resumed (its plan changed): pull again"
            )
        self._use(response)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        super().close()
