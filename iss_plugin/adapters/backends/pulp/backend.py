"""The Pulp backend assembled from its parts, made from settings; one logged-in session per Pulp
and user in a process."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iss_plugin.adapters.backends.pulp.client import Params, PulpConnection, PulpSession
from iss_plugin.adapters.backends.pulp.export import PulpExport
from iss_plugin.adapters.backends.pulp.housekeeping import PulpHousekeeping
from iss_plugin.adapters.backends.pulp.imports import PulpImport
from iss_plugin.adapters.backends.pulp.receive import PulpPackageReceiver
from iss_plugin.adapters.backends.pulp.stream_export import PulpStreamExport
from iss_plugin.adapters.backends.pulp.watch import PulpWatch
from iss_plugin.domain.errors import ConfigError

if TYPE_CHECKING:
    from iss_plugin.settings import Settings

UPLOAD_THREADS = 4
BULK_UPLOAD = 20  # from this many files to upload, one sync of a yum tree around them beats one request each
STREAM_BATCH = 100  # package files of a stream gathered for one sync into Pulp (two batches at most on disk)
MODIFY_IMPORT_LIMIT = 200  # up to this many new package files, an import is uploads + one modify (follows the change)

_SESSIONS: dict[tuple[str, str, str], PulpSession] = {}
_SESSIONS_LOCK = threading.Lock()


class PulpBackend(PulpImport, PulpExport, PulpStreamExport, PulpHousekeeping, PulpWatch):
    """ContentBackend over a Pulp 3 server with pulp_rpm."""

    name = "pulp"

    def __init__(
        self,
        session: PulpSession,
        *,
        shared_export_dir: Path | None,
        shared_import_dir: Path | None,
        repo_prefix: str = "",
        upload_threads: int = UPLOAD_THREADS,
        bulk_upload: int = BULK_UPLOAD,
        modify_import_limit: int = MODIFY_IMPORT_LIMIT,
        stream_batch: int = STREAM_BATCH,
        remote_options: Params | None = None,
        stream_cache_dir: Path | None = None,
    ) -> None:
        self.pulp = session
        self.shared_export_dir = Path(shared_export_dir) if shared_export_dir else None
        self.shared_import_dir = Path(shared_import_dir) if shared_import_dir else None
        self.repo_prefix = repo_prefix
        self.upload_threads = upload_threads
        self.bulk_upload = bulk_upload
        self.modify_import_limit = modify_import_limit
        self.stream_batch = stream_batch
        self.remote_options = dict(remote_options or {})  # e.g. {"max_retries": 0}: more remote settings
        self._repos = {}
        self.stream_cache_dir = Path(stream_cache_dir) if stream_cache_dir else None  # repodata of streams

    def package_receiver(self, expected: Collection[str] = ()) -> PulpPackageReceiver:
        """ReceivesPackages: package files of a stream uploaded one at a time (`expected`: the
        sha256s the signed manifest lists; those Pulp holds already are not uploaded again)."""
        return PulpPackageReceiver(self, expected, self.stream_batch)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> PulpBackend:
        p = settings.pulp
        if p.password is not None:
            password = p.password
        elif p.password_file is not None:
            try:
                password = Path(p.password_file).read_text().strip()
            except OSError as e:
                raise ConfigError(f"pulp.password_file {p.password_file} cannot be read: {e.strerror}") from None
        else:
            raise ConfigError("the pulp backend needs pulp.password or pulp.password_file (ISS_PULP__PASSWORD_FILE)")
        return cls(
            session_for(PulpConnection(p.url, p.username, password, p.timeout_seconds)),
            shared_export_dir=p.shared_export_dir,
            shared_import_dir=p.shared_import_dir,
            **{
                "repo_prefix": p.repo_prefix,
                "stream_batch": p.stream_batch,
                "stream_cache_dir": settings.store_path / "pulp-cache" / "repodata",
                **kwargs,
            },
        )


def session_for(conn: PulpConnection) -> PulpSession:
    """One logged-in session per Pulp and user in a process (a login and the API description cost ~2 s)."""
    key = (conn.url, conn.username, hashlib.sha256(conn.password.encode()).hexdigest())
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(key)
        if s is None:
            s = _SESSIONS[key] = PulpSession(conn)
        return s
