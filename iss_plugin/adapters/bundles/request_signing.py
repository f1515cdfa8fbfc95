"""Signed bundle downloads: a destination proves who it is with its own Ed25519 key.

The source already holds each destination's public key (`iss destination add`), so no shared
secret is needed. The destination signs `iss-download-v1\\n<METHOD>\\n<path>\\n<unix time>\\n<server id>`
and sends it as

    Authorization: Iss-Ed25519 server="<server id>", time="<unix seconds>", signature="<base64>"

The source checks the signature with that destination's key and the time within WINDOW seconds
of its own clock. A signature is bound to one path, so it opens one bundle only."""

from __future__ import annotations

import re
import time as clock
from dataclasses import dataclass

from iss_plugin.domain.errors import NotAuthenticated

from .signing import Signer, verify

SCHEME = "Iss-Ed25519"
WINDOW = 300  # seconds either side of the source's clock
_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class SignedRequest:
    server_id: str
    time: int
    signature: str


def message(method: str, path: str, timestamp: int, server_id: str) -> bytes:
    return f"iss-download-v1\n{method.upper()}\n{path}\n{timestamp}\n{server_id}".encode()


def authorization(signer: Signer, server_id: str, method: str, path: str, now: float | None = None) -> str:
    """The Authorization header value for one request."""
    timestamp = int(clock.time() if now is None else now)
    signature = signer.sign(message(method, path, timestamp, server_id)).decode("ascii")
    return f'{SCHEME} server="{server_id}", time="{timestamp}", signature="{signature}"'


def parse(header: str) -> SignedRequest | None:
    """The signed request in an Authorization header, None when it uses another scheme."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        return None
    params = dict(_PARAM.findall(rest))
    try:
        return SignedRequest(params["server"], int(params["time"]), params["signature"])
    except (KeyError, ValueError):
        raise NotAuthenticated(
            f'a {SCHEME} Authorization header needs server="...", time="<unix seconds>" and signature="..."'
        ) from None


def check(signed: SignedRequest, public_pem: str, method: str, path: str, now: float | None = None) -> None:
    """NotAuthenticated unless the signature is the destination's over this request, in time."""
    current = clock.time() if now is None else now
    if abs(current - signed.time) > WINDOW:
        raise NotAuthenticated(
            f"the signed request's time is more than {WINDOW} s from this server's clock: check both clocks (NTP)"
        )
    if not verify(public_pem, message(method, path, signed.time, signed.server_id), signed.signature):
        raise NotAuthenticated(f"the signature does not match destination '{signed.server_id}''s key for {path}")
