"""One frozen Settings object, built once at process start from a TOML file and ISS_* variables.

Precedence: ISS_* environment variables > the TOML file (--config, $ISS_CONFIG or
/etc/iss/settings.toml) > defaults. Nested keys use a double underscore: ISS_PULP__URL."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from iss_plugin.domain.errors import ConfigError, UsageError
from iss_plugin.domain.labels import check_server_id

DEFAULT_CONFIG = Path("/etc/iss/settings.toml")


class PulpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    url: str = "http://127.0.0.1:24817"
    username: str = "admin"
    password: str | None = None
    password_file: Path | None = None
    content_origin: str | None = None
    shared_export_dir: Path | None = None  # a path under Pulp's ALLOWED_EXPORT_PATHS
    shared_import_dir: Path | None = None  # a path under Pulp's ALLOWED_IMPORT_PATHS
    repo_prefix: str = ""  # prepended to Pulp repository names (several iss servers, or test runs, on one Pulp)
    timeout_seconds: int = 600
    # package files of a pulled stream gathered for one sync into Pulp; at most two batches lie on
    # disk outside Pulp's store (smaller: less disk, more Pulp tasks)
    stream_batch: int = Field(default=100, ge=1)


class BusSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    url: str = "memory://"
    exchange: str = "iss"
    prefix: str = "iss"  # queue name prefix (tests use a unique one)
    retry_delays_ms: tuple[int, ...] = (1000, 5000, 30000)
    max_attempts: int = 5
    prefetch: int = 4
    heartbeat: int = 30
    confirm_timeout: float = 30.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISS_", env_nested_delimiter="__", frozen=True, extra="forbid")

    data_dir: Path = Path("/var/lib/iss")
    database_url: str | None = None
    server_id: str | None = None  # defaults to the one `iss init` wrote into the data dir
    backend: Literal["local", "pulp"] = "local"
    export_dir: Path | None = None
    import_dir: Path | None = None
    actor: str = "admin"
    export_account: str = "iss-export"  # the service account export workers act as (needs export_content)
    import_account: str = "iss-import"  # the service account import workers act as (needs import_content)
    web_base_url: str | None = (
        None  # this server's `iss serve` as others reach it: bundle.ready carries http(s) locations
    )
    web_max_upload_mb: int = 65536  # the largest bundle PUT /api/v1/uploads accepts
    foreman_hook_secret_file: Path | None = None  # shared secret of POST /api/v1/hooks/foreman (unset: the hook is off)
    web_listen: str = "127.0.0.1:8080"  # host:port of `iss serve` and of the dashboard inside `iss run`
    web_secure_cookies: bool = False  # session cookie always `Secure` (it is whenever the request is https)
    # login throttling of the dashboard's password form (per process, in memory; 0 turns a limit off)
    web_login_max_failures: int = Field(default=5, ge=0)  # failed logins for one login within the window
    web_login_max_failures_per_address: int = Field(default=20, ge=0)  # failed logins from one client address
    web_login_window_seconds: int = Field(default=900, ge=1)  # the sliding window both limits count in
    reconcile_interval_seconds: int = 60
    reconcile_grace_seconds: int = 300
    # sent outbox rows and processed-event markers older than this many days are deleted by
    # `iss store gc` and iss run's reconcile loop (0: keep them all); docs/operations.md "Retention"
    event_retention_days: int = 30
    fetch_roots: tuple[Path, ...] = ()  # file:// bundle locations an import worker accepts (empty: any local path)
    pulp: PulpSettings = PulpSettings()
    bus: BusSettings = BusSettings()

    @field_validator("server_id")
    @classmethod
    def _valid_server_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_server_id(value)
        except UsageError as e:
            raise ValueError(e.message) from None

    @field_validator("event_retention_days")
    @classmethod
    def _valid_retention(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value} days: give 0 (keep every event) or a number of days (default 30)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    # derived paths -----------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'iss.db'}"

    @property
    def exports_path(self) -> Path:
        return self.export_dir or self.data_dir / "exports"

    @property
    def imports_path(self) -> Path:
        return self.import_dir or self.data_dir / "imports"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store"

    @property
    def published_path(self) -> Path:
        return self.data_dir / "published"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys"

    @property
    def server_id_file(self) -> Path:
        return self.data_dir / "server_id"

    def resolved_server_id(self) -> str:
        if self.server_id:
            return self.server_id
        try:
            text = self.server_id_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"no server id: {self.server_id_file} is missing; run `iss init` first") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the server id from {self.server_id_file}: {e}") from None
        try:
            return check_server_id(text, what=f"the server id in {self.server_id_file}")
        except UsageError as e:
            raise ConfigError(f"{e.message}; fix the file, or set server_id in the settings") from None


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError naming what is wrong."""
    path = Path(config) if config else Path(os.environ["ISS_CONFIG"]) if os.environ.get("ISS_CONFIG") else None
    values: dict[str, Any] = {}
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        base = path.parent
        for key in ("data_dir", "export_dir", "import_dir"):
            if key in values and not Path(values[key]).is_absolute():
                values[key] = str((base / values[key]).resolve())
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as e:
        where = f" in {path}" if path else ""
        problems = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"invalid settings{where} (or ISS_* variables)", problems) from None
