"""The JSON API through the real app: a source server (SQLite, the local store) with ACME/base
published, users with real tokens, and FastAPI's TestClient over create_app."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from consumers.demo import ORG, make_server, prepare_source
from iss_plugin.bootstrap import App
from iss_plugin.services import catalog, content_views, identity
from iss_plugin.web.app import create_app

ACTOR = "test"
HOOK_SECRET = b"a-shared-secret-of-some-length"


@dataclass
class Api:
    app: App
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def wait_tasks(self) -> None:
        self.client.app.state.task_runner.wait(timeout=120)

    def task(self, location: str, user: str = "admin") -> dict:
        self.wait_tasks()
        r = self.client.get(location, headers=self.auth(user))
        assert r.status_code == 200, r.text
        return r.json()


def user_with(app: App, login: str, role: str | None, organization: str | None) -> str:
    identity.create_user(app.uow(), login, None, ACTOR)
    if role:
        identity.grant_role(app.uow(), login, role, organization, ACTOR)
    return identity.create_token(app.uow(), login, "t", None, ACTOR)["token"]


def make_source(root: Path, **settings) -> App:
    hook = root / "hook.secret"
    hook.write_bytes(HOOK_SECRET + b"\n")
    app = make_server(root, "source", foreman_hook_secret_file=str(hook), **settings)
    prepare_source(app, root / "rpms", 3, ACTOR)
    content_views.publish(app.uow(), ORG, "base", None, ACTOR, app.server_id)
    catalog.create_organization(app.uow(), "Other Corp", "OTHER", ACTOR)
    return app


def tokens_for(app: App) -> dict[str, str]:
    admin = identity.read_credentials(app.settings.data_dir / identity.CREDENTIALS_NAME)
    assert admin
    return {
        "admin": admin,
        "exporter": user_with(app, "exporter", "Content Exporter", ORG),
        "importer": user_with(app, "importer", "Content Importer", ORG),
        "viewer": user_with(app, "viewer", "Viewer", ORG),
        "other": user_with(app, "other", "Content Exporter", "OTHER"),
    }


@pytest.fixture
def api(tmp_path):
    app = make_source(tmp_path)
    try:
        with TestClient(create_app(app)) as client:
            yield Api(app, client, tokens_for(app))
    finally:
        app.close()


def signed(body: bytes, secret: bytes = HOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
