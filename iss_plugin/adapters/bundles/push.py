"""Pushing a bundle's stream to an online destination (phase 3): one signed POST, the answer back.

    kind, answer = push_stream(url, entries, organization=ORG, signer=signer)

The body is the same tar GET /api/v1/bundles/stream serves (adapters/bundles/stream.py), generated
while it is sent. The request is signed with this server's key (request_signing, method POST, path
and query) and names the signing key by its fingerprint in `server="..."`: a destination knows its
trusted sources by key, not by server id. The destination answers 200 with
{"state": "imported" | "rejected", "answer": <the data of iss.bundle.imported.v1 / rejected.v1>}.
Unreachable or 5xx: TransientError (the bus retries); 401/403: NotAuthenticated; other: IssError."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Literal

import httpx

from iss_plugin.domain.errors import IssError, NotAuthenticated, TransientError
from iss_plugin.domain.jsontypes import JSONObject

from . import request_signing
from .signing import Signer
from .stream import Entry, tar_stream_from

PUSH_PATH = "/api/v1/imports/push"
_TIMEOUT = httpx.Timeout(30.0, read=3600.0)  # the destination answers once the import committed


def push_target(organization: str) -> str:
    return f"{PUSH_PATH}?{urllib.parse.urlencode({'organization': organization})}"


def push_stream(
    base_url: str,
    entries: Sequence[Entry],
    *,
    organization: str,
    signer: Signer,
    transport: httpx.BaseTransport | None = None,
) -> tuple[Literal["imported", "rejected"], JSONObject]:
    target = push_target(organization)
    auth = request_signing.authorization(signer, signer.fingerprint, "POST", target)
    url = base_url.rstrip("/") + target
    headers = {"Authorization": auth, "Content-Type": "application/octet-stream"}
    try:
        with httpx.Client(timeout=_TIMEOUT, transport=transport) as client:
            response = client.post(url, content=tar_stream_from(entries, 0), headers=headers)
    except httpx.TransportError as e:
        raise TransientError(f"cannot push to {base_url}: {e}") from None
    if response.status_code == 200:
        try:
            body = response.json()
            state, answer = body["state"], body["answer"]
        except (ValueError, KeyError, TypeError):
            raise IssError(f"{base_url} answered the push with no imported/rejected answer") from None
        if state not in ("imported", "rejected") or not isinstance(answer, dict):
            raise IssError(f"{base_url} answered the push with state {state!r}")
        return state, answer
    try:
        message = str(response.json().get("message", response.text))
    except ValueError:
        message = response.text[:300]
    error = f"{base_url} refused the push ({response.status_code}): {message}"
    if response.status_code in (401, 403):
        raise NotAuthenticated(error)
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(error)
    raise IssError(error)
