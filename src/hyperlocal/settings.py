"""Typed settings, read from ``HYPERLOCAL_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every knob of a hyperlocal server. ``hyperlocal settings`` prints them all."""

    model_config = SettingsConfigDict(env_prefix="HYPERLOCAL_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("hyperlocal-data"),
        description="Directory for the SQLite database and locally stored outputs.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy async URL. Default: sqlite+aiosqlite:///<data_dir>/hyperlocal.db. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL (redis://host:6379/0). When set, rate limits live in Redis.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL that clients reach this server at; used to build outputUrl and "
        "pollUrl.",
    )
    host: str = Field("127.0.0.1", description="Address that `hyperlocal serve` binds.")
    port: int = Field(8000, description="Port that `hyperlocal serve` binds.")
    storage_url: str | None = Field(
        None,
        description="Where outputs are stored. Default: file://<data_dir>/files.",
    )
    catalog: Path | None = Field(
        None,
        description="An operator's catalogue file (TOML) that extends or overrides the built-in "
        "model catalogue.",
    )
    allow_private_urls: bool = Field(
        False,
        description="Allow input and webhook URLs that resolve to private, loopback or link-local "
        "addresses. For development and tests only.",
    )
    fetch_max_bytes: int = Field(20 * 1024 * 1024, description="Largest input media fetched.")
    fetch_timeout: float = Field(20.0, description="Seconds allowed for fetching one input URL.")
    max_body_bytes: int = Field(25 * 1024 * 1024, description="Largest request body accepted.")
    default_rate_limit: int = Field(
        1000, description="Requests per rolling hour for a key created without its own limit."
    )
    default_max_running_jobs: int = Field(
        15, description="Jobs a key may have running at once; more wait in the queue."
    )
    worker_concurrency: int = Field(
        4, description="Jobs that the in-process worker runs at once (embedded mode)."
    )
    bootstrap_credits: int = Field(
        1000, description="Credits given to the first API key created on first start."
    )
    bootstrap_keys: bool = Field(
        True, description="On first start, create an admin key and a first API key and print both."
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    log_json: bool | None = Field(
        None, description="Log as JSON lines. Default: JSON unless stderr is a terminal."
    )

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'hyperlocal.db'}"

    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir.resolve() / "files").as_uri()

    def external_url(self, path: str) -> str:
        return self.public_url.rstrip("/") + "/" + path.lstrip("/")
