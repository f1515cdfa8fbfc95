"""POST /api/v1/hooks/foreman: Katello's content view publish webhook, authenticated by a shared-secret
HMAC: `X-Iss-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>`, the secret read from the
file `foreman_hook_secret_file`. A missing or wrong signature is 401 and writes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi import APIRouter, Depends, Header, Request

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import ConfigError, NotAuthenticated, NotFound, RejectedInput
from iss_plugin.services import foreman_webhooks
from iss_plugin.web.auth import iss_app

from .models import ERRORS, HookAccepted

router = APIRouter(prefix="/api/v1", tags=["hooks"], responses=ERRORS)
ACTOR = "foreman-webhook"


def _secret(app: App) -> bytes:
    path = app.settings.foreman_hook_secret_file
    if path is None:
        raise NotFound("the Foreman webhook is off on this server (set foreman_hook_secret_file)")
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"cannot read foreman_hook_secret_file {path}: {e.strerror}") from None
    if len(secret) < 16:
        raise ConfigError(f"foreman_hook_secret_file {path} holds fewer than 16 bytes: use a longer secret")
    return secret


@router.post(
    "/hooks/foreman",
    response_model=HookAccepted,
    status_code=202,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def foreman_webhook(
    request: Request,
    x_iss_signature: str | None = Header(default=None, description="sha256=<hex HMAC-SHA256 of the raw body>"),
    app: App = Depends(iss_app),
) -> HookAccepted:
    """Feed the outbox with the iss.content_view.published.v1 event of a publish_succeeded webhook."""
    secret = _secret(app)
    body = await request.body()
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not x_iss_signature or not hmac.compare_digest(x_iss_signature.strip().encode(), expected.encode()):
        raise NotAuthenticated(
            "missing or wrong X-Iss-Signature (sha256=<HMAC-SHA256 of the body with the shared secret>)"
        )
    try:
        webhook = json.loads(body)
    except ValueError as e:
        raise RejectedInput(f"the webhook body is not JSON: {e}") from None
    source = f"urn:iss:{app.server_id}:foreman-webhook"
    return HookAccepted(**foreman_webhooks.accept_publish_webhook(app.uow(), webhook, source, ACTOR))
