"""Typed settings, read from ``HYPERLOCAL_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: object) -> object:
    """Seconds from a number, or from a readable duration (``90s``, ``30m``, ``24h``, ``7d``,
    ``2w``, or parts of these together: ``1d12h``). Anything else is left for the field's own
    validation to refuse."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        return value
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Every knob of a hyperlocal server. ``hyperlocal settings`` prints them all."""

    model_config = SettingsConfigDict(
        env_prefix="HYPERLOCAL_", env_file=".env", extra="ignore", populate_by_name=True
    )

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
    models_dir: Path | None = Field(
        None,
        description="Local model weights for GPU adapters, one folder per model "
        "(HYPERLOCAL_MODELS_DIR/<name>). Default: <data_dir>/models.",
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
    gc_freeze: bool = Field(
        True,
        description="Once started, set the objects that live as long as the process aside from "
        "Python's garbage collector (gc.freeze), so that its full collections scan only what "
        "requests allocate: about 80 ms per full collection less, about 150 µs per request.",
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="Seconds an API process remembers a valid key instead of looking it up "
        "again; a revocation made elsewhere (the CLI, another process) takes effect within "
        "this time. 0 looks every request up.",
    )
    default_max_running_jobs: int = Field(
        15, description="Jobs a key may have running at once; more wait in the queue."
    )
    worker_concurrency: int = Field(
        4,
        description="Jobs that the in-process worker runs at once (embedded mode); also the "
        "default of `hyperlocal worker --concurrency` (scale-out).",
    )
    default_chat_model: str = Field(
        "smollm2-135m", description="The chat model used when a request names none."
    )
    webhook_schedule: list[float] = Field(
        [0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Seconds before each webhook attempt (Standard Webhooks: immediately, 5 s, "
        "5 min, 30 min, 2 h, 5 h, 10 h, 10 h). JSON list.",
    )
    webhook_jitter: float = Field(
        0.1, description="Random spread of each retry delay (0.1 = ±10%)."
    )
    webhook_timeout: float = Field(10.0, description="Seconds a receiver has to answer.")
    webhook_concurrency: int = Field(64, description="Webhook requests in flight at once.")
    webhook_per_receiver: int = Field(
        8,
        description="Of those, how many may go to one receiver (its host and port, whatever "
        "the path): a slow receiver never takes every slot.",
    )
    sse_streams_per_key: int = Field(
        100,
        ge=1,
        description="SSE streams (streamed chats and job events) one key may hold open at "
        "once, per API process; one more answers 429.",
    )
    webhook_poll_interval: float = Field(
        0.5, description="Seconds between looks at the outbox for due deliveries."
    )
    job_lease_seconds: float = Field(
        30.0, description="A running job's lease; a worker that stops renewing it loses the job."
    )
    job_max_attempts: int = Field(
        3, description="Times a job is started before a lost worker fails it (and refunds)."
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM, how long running jobs may go on before they are stopped and "
        "put back in the queue (released at once, not left to their leases).",
    )
    queue_namespace: str = Field(
        "hyperlocal",
        description="Scale-out (PostgreSQL + Redis): prefix of the Celery queue names "
        "(<namespace>.<model id>) and of every Redis key they use. API servers and workers of "
        "one deployment share it.",
    )
    worker_models: list[str] = Field(
        ["*"],
        description="`hyperlocal worker`: globs of the model ids whose queues it consumes "
        "(default all). JSON list; `--models` overrides it.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint (MinIO, R2, moto...) for s3:// storage; path-style "
        "addressing is used with it. Default: AWS S3.",
    )
    s3_region: str = Field("us-east-1", description="Region of the s3:// storage bucket.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="Access key id for s3:// storage. Default: boto3's credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key for s3:// storage."
    )
    s3_public_base_url: str | None = Field(
        None,
        description="Public base URL of the bucket (a CDN, or a public bucket's URL): outputs are "
        "then <base>/<object key>. Default: presigned URLs.",
    )
    s3_presign_seconds: int = Field(
        604_800,
        ge=1,
        le=604_800,
        description="Lifetime of presigned output URLs (SigV4 allows at most 7 days).",
    )
    output_retention: Duration = Field(
        7 * 86_400,
        ge=0,
        description="How long a job's outputs are kept after it ends, in seconds or as a "
        "duration (24h, 7d); then they are deleted and fetching them answers 410. 0 keeps them "
        "forever. A submit's `retention` may shorten it, never lengthen it.",
    )
    input_retention: Duration = Field(
        86_400,
        ge=0,
        description="How long a job's stored inputs are kept after it ends (at most as long as "
        "its outputs, unless those are kept forever).",
    )
    retention_sweep_interval: float = Field(
        60.0, gt=0, description="Seconds between looks for expired outputs and inputs."
    )
    bootstrap_credits: int = Field(
        1000, description="Credits given to the first API key created on first start."
    )
    migrate_on_start: bool = Field(
        True, description="Bring the database schema up to date when a process starts."
    )
    bootstrap_keys: bool = Field(
        True, description="On first start, create an admin key and a first API key and print both."
    )
    metrics: bool = Field(
        True,
        description="Record Prometheus metrics and serve them on /metrics (off: nothing is "
        "recorded, and /metrics answers 404).",
    )
    metrics_public: bool = Field(
        False,
        description="Serve /metrics to anyone; otherwise only to an admin key.",
    )
    metrics_bind: str | None = Field(
        None,
        description="Also serve the metrics, to anyone who can reach it, on this address of "
        "their own (host:port, e.g. 127.0.0.1:9464): for a private network.",
    )
    # -- providers: real models through the operator's own keys (docs/providers.md) --------
    # The keys are read from the providers' own variables, not HYPERLOCAL_*.
    fal_key: SecretStr | None = Field(
        None, validation_alias="FAL_KEY", description="fal.ai key (FAL_KEY)."
    )
    replicate_api_token: SecretStr | None = Field(
        None,
        validation_alias="REPLICATE_API_TOKEN",
        description="Replicate token (REPLICATE_API_TOKEN).",
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias="OPENAI_API_KEY", description="OpenAI key (OPENAI_API_KEY)."
    )
    gemini_api_key: SecretStr | None = Field(
        None,
        validation_alias="GEMINI_API_KEY",
        description="Google Gemini API key (GEMINI_API_KEY).",
    )
    bfl_api_key: SecretStr | None = Field(
        None, validation_alias="BFL_API_KEY", description="Black Forest Labs key (BFL_API_KEY)."
    )
    fal_base_url: str = Field(
        "https://queue.fal.run", description="fal's queue API (a loopback fake in tests)."
    )
    fal_jwks_url: str = Field(
        "https://rest.alpha.fal.ai/.well-known/jwks.json",
        description="Where fal publishes the ED25519 keys that sign its webhooks.",
    )
    replicate_base_url: str = Field(
        "https://api.replicate.com", description="Replicate's API root (the SDK adds /v1)."
    )
    replicate_webhook_secret: SecretStr | None = Field(
        None,
        description="Replicate's webhook signing secret (whsec_...); unset, it is read once "
        "from GET /v1/webhooks/default/secret.",
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="OpenAI's API base, with /v1."
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com", description="The Gemini API's root."
    )
    bfl_base_url: str = Field("https://api.bfl.ai", description="Black Forest Labs' API root.")
    provider_webhooks: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Ask providers to notify completion by webhook to public_url: auto does "
        "when public_url is not a loopback or private address. Polling always runs too.",
    )
    provider_poll_interval: float = Field(
        2.0, gt=0, description="First pause between polls of a provider job; it grows to 30 s."
    )
    provider_status_stream: bool = Field(
        True,
        description="Follow a provider job without a webhook by the provider's status stream, "
        "where it has one (fal), to learn of its end at once; off: by polls alone.",
    )
    provider_retry_after_budget: float = Field(
        30.0,
        ge=0,
        description="Seconds of Retry-After that a provider's 429 may ask for before the job "
        "moves on to the next route.",
    )
    provider_breaker_failures: int = Field(
        5, ge=1, description="A provider that failed this many calls in a row is skipped ..."
    )
    provider_breaker_cooldown: Duration = Field(
        60.0, gt=0, description="... for this long (seconds, or 90s, 5m)."
    )
    provider_concurrency: dict[str, int] = Field(
        default_factory=dict,
        description='Jobs in flight at each provider, at most: JSON, e.g. {"fal": 10}. '
        "Unnamed providers: 32.",
    )
    gpu_memory_fraction: float = Field(
        0.9, gt=0, le=1, description="Share of each device's memory that loaded models may use."
    )
    model_idle_seconds: Duration = Field(
        600.0, ge=0, description="Unload a local model idle this long (seconds, or 10m; 0: never)."
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
