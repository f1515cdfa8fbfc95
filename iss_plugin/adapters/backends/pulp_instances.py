"""The Pulp servers started by deploy/pulp/pulpctl, as tests, benchmarks and demos find them.

`pulpctl start` writes each instance's ISS_* variables to $ISS_PULP_DATA/<n>/env (default
/var/lib/iss-pulp/<n>/env); this module reads that file (the one place that knows the ports)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.pulp import PulpBackend
    from iss_plugin.settings import Settings

DEFAULT_DATA = Path("/var/lib/iss-pulp")


def data_dir() -> Path:
    return Path(os.environ.get("ISS_PULP_DATA") or DEFAULT_DATA)


@dataclass(frozen=True)
class PulpInstance:
    number: int
    env: dict[str, str]  # the ISS_* variables an iss process needs for this Pulp

    @property
    def url(self) -> str:
        return self.env["ISS_PULP__URL"]

    @property
    def password_file(self) -> Path:
        return Path(self.env["ISS_PULP__PASSWORD_FILE"])

    @property
    def export_dir(self) -> Path:
        return Path(self.env["ISS_PULP__SHARED_EXPORT_DIR"])

    @property
    def import_dir(self) -> Path:
        return Path(self.env["ISS_PULP__SHARED_IMPORT_DIR"])

    def settings(self, repo_prefix: str = "", **overrides: Any) -> Settings:
        """An iss Settings object that uses this Pulp."""
        from iss_plugin.settings import PulpSettings, Settings

        pulp = PulpSettings(
            repo_prefix=repo_prefix,
            url=self.url,
            username=self.env.get("ISS_PULP__USERNAME", "admin"),
            password_file=self.password_file,
            content_origin=self.env.get("ISS_PULP__CONTENT_ORIGIN"),
            shared_export_dir=self.export_dir,
            shared_import_dir=self.import_dir,
        )
        return Settings(backend="pulp", pulp=pulp, **overrides)

    def backend(self, repo_prefix: str = "", **kwargs: Any) -> PulpBackend:
        from iss_plugin.adapters.backends.pulp import PulpBackend

        return PulpBackend.from_settings(self.settings(), repo_prefix=repo_prefix, **kwargs)


def settings_toml(instance: PulpInstance, repo_prefix: str = "") -> str:
    """The [pulp] table of an iss settings.toml (plus backend = "pulp") for this instance."""
    e = instance.env
    lines = [
        'backend = "pulp"',
        "",
        "[pulp]",
        f'url = "{instance.url}"',
        f'username = "{e.get("ISS_PULP__USERNAME", "admin")}"',
        f'password_file = "{instance.password_file}"',
        f'shared_export_dir = "{instance.export_dir}"',
        f'shared_import_dir = "{instance.import_dir}"',
        f'repo_prefix = "{repo_prefix}"',
    ]
    if e.get("ISS_PULP__CONTENT_ORIGIN"):
        lines.append(f'content_origin = "{e["ISS_PULP__CONTENT_ORIGIN"]}"')
    return "\n".join(lines) + "\n"


def find_instance(number: int = 1) -> PulpInstance:
    """The instance `pulpctl start` made, or FileNotFoundError naming what is missing."""
    path = data_dir() / str(number) / "env"
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return PulpInstance(number, env)


def reachable(instance: PulpInstance, timeout: float = 2.0) -> str | None:
    """None when the instance's API answers /pulp/api/v3/status/; otherwise why not."""
    import requests

    parts = urlsplit(instance.url)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout).close()
        r = requests.get(instance.url.rstrip("/") + "/pulp/api/v3/status/", timeout=timeout * 5)
    except (OSError, requests.RequestException) as e:
        return f"Pulp instance {instance.number} at {instance.url} does not answer: {e}"
    if r.status_code != 200:
        return f"Pulp instance {instance.number} at {instance.url} answered {r.status_code} to /status/"
    if not instance.password_file.is_file():
        return f"Pulp instance {instance.number}: {instance.password_file} is missing"
    return None
