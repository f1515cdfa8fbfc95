"""`iss init`: data directories, database schema, the server's key pair and id."""

from __future__ import annotations

import socket
import uuid
from typing import TypedDict

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import redacted_url
from iss_plugin.domain.labels import server_id_from_hostname
from iss_plugin.settings import Settings


class Initialized(TypedDict):
    data_dir: str
    database: str
    server_id: str
    key_fingerprint: str
    key_created: bool
    schema: str | None


def initialize(settings: Settings) -> Initialized:
    from iss_plugin.adapters.bundles.signing import generate_keypair, load_signer

    for path in (
        settings.data_dir,
        settings.exports_path,
        settings.imports_path,
        settings.store_path,
        settings.published_path,
        settings.keys_path,
    ):
        path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.db_url)
    created_key = not (settings.keys_path / "ed25519.key").exists()
    signer = generate_keypair(settings.keys_path) if created_key else load_signer(settings.keys_path)
    if not settings.server_id_file.exists():
        settings.server_id_file.write_text((settings.server_id or default_server_id()) + "\n")
    return {
        "data_dir": str(settings.data_dir),
        "database": redacted_url(settings.db_url),
        "server_id": settings.resolved_server_id(),
        "key_fingerprint": signer.fingerprint,
        "key_created": created_key,
        "schema": migrate.current(settings.db_url),
    }


def default_server_id(hostname: str | None = None) -> str:
    """`<first label of the host name>-<8 random hex digits>`, sanitized to a valid server id."""
    return server_id_from_hostname(hostname if hostname is not None else socket.gethostname(), uuid.uuid4().hex[:8])
