"""Browser sessions and CSRF for the dashboard.

- The session cookie (`SESSION_COOKIE`) is Starlette's signed cookie; the key is this server's
  `<data_dir>/web-secret` (made once, mode 0600), never a constant. `httponly` and `samesite=lax`
  always; `Secure` when the request is https or `web_secure_cookies` is set.
- CSRF: a per-session token (`session["csrf"]`), put in every form as the hidden field
  `csrf_token`. Every POST/PUT/PATCH/DELETE that carries the session cookie (and every POST to
  /login) must send it: as the form field (urlencoded forms), the `X-CSRF-Token` header, or the
  `csrf_token` query parameter (multipart uploads). A request with `Authorization: Bearer` carries
  no ambient authority and needs none; nor does one without the session cookie (e.g. the Foreman
  webhook, authenticated by its own HMAC). Missing or wrong: 403, and the request never reaches
  the application.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "iss_session"
SECRET_NAME = "web-secret"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_FORM_BYTES = 1 << 20


def session_secret(data_dir: Path) -> str:
    """This server's session signing key: read, or made once (mode 0600)."""
    path = data_dir / SECRET_NAME
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


class SecureCookieMiddleware:
    """Adds `Secure` to the session cookie when the request is https (or always, if asked).
    Outside SessionMiddleware, whose flags are fixed per application."""

    def __init__(self, app: ASGIApp, *, always: bool = False) -> None:
        self.app = app
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.always or scope.get("scheme") == "https"):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cookies = headers.getlist("set-cookie")
                if any(c.startswith(SESSION_COOKIE + "=") for c in cookies):
                    del headers["set-cookie"]
                    for c in cookies:
                        secure = c.startswith(SESSION_COOKIE + "=") and "secure" not in c.lower()
                        headers.append("set-cookie", c + "; secure" if secure else c)
            await send(message)

        await self.app(scope, receive, send_secure)


class CsrfMiddleware:
    """Refuses state-changing requests of a browser session without the session's CSRF token.
    Sits inside SessionMiddleware (it reads scope["session"])."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("authorization", "").lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        has_cookie = SESSION_COOKIE in cookie_parser(headers.get("cookie", ""))
        if not has_cookie and scope["path"] != "/login":
            await self.app(scope, receive, send)
            return
        given = headers.get(CSRF_HEADER)
        body: bytes | None = None
        if given is None and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = await _read_body(receive)
            if body is None:
                await PlainTextResponse("form too large", status_code=413)(scope, receive, send)
                return
            given = _first(parse_qs(body.decode("latin-1")).get(CSRF_FIELD))
        if given is None:
            given = _first(parse_qs(scope.get("query_string", b"").decode("latin-1")).get(CSRF_FIELD))
        expected = scope.get("session", {}).get(CSRF_KEY)
        if not (isinstance(expected, str) and expected and given and hmac.compare_digest(expected, given)):
            refusal = PlainTextResponse(
                "403 Forbidden: this form's CSRF token is missing or wrong (an old page, or another site "
                "posting on your behalf); reload the page and try again. Nothing was changed.",
                status_code=403,
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive) if body is not None else receive, send)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
