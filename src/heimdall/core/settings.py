"""Typed settings, read once from the environment (prefix ``HEIMDALL_``).

Development defaults point at the services this machine runs on loopback. In
``production`` every secret must be given explicitly and must not be one of the
well-known placeholders: start-up stops with a message naming the setting.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"changeme", "minioadmin", "guest", "heimdall-dev-secret", ""})
# Words that mark a value nobody replaced (in any setting, URLs included).
PLACEHOLDER_MARKERS = ("changeme", "change-me", "replace-me", "placeholder")
# Bearer tokens in production are at least this long (scripts/generate-env.sh: 48).
MIN_TOKEN_LENGTH = 32

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"


class Environment(StrEnum):
    development = "development"
    production = "production"


class InsecureSettingsError(RuntimeError):
    """Raised at start-up when production settings carry placeholder secrets."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEIMDALL_", env_file=None, extra="ignore")

    environment: Environment = Environment.development

    # --- backing services -------------------------------------------------
    database_url: SecretStr = SecretStr("postgresql+psycopg://postgres@127.0.0.1:5432/heimdall")
    broker_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672//")
    result_backend_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Cancel flags and short-lived state; a separate DB index from the result backend.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/1")

    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_access_key: SecretStr = SecretStr("heimdall")
    s3_secret_key: SecretStr = SecretStr("heimdall-dev-secret")
    s3_region: str = "us-east-1"
    s3_bucket_raw: str = "heimdall-raw-iq"
    s3_bucket_models: str = "heimdall-models"
    # Start SeaweedFS ourselves when the endpoint is local and nothing answers.
    s3_autostart: bool = True

    # --- services ---------------------------------------------------------
    bind_host: str = "127.0.0.1"
    gateway_port: int = 8000
    acquisition_port: int = 8001
    training_port: int = 8002
    inference_port: int = 8003
    ingestion_port: int = 8004
    # The worker's own /metrics (multiprocess collector over its prefork children); 0 = off.
    worker_metrics_port: int = 9808
    acquisition_url: str = "http://127.0.0.1:8001"
    training_url: str = "http://127.0.0.1:8002"
    inference_url: str = "http://127.0.0.1:8003"
    ingestion_url: str = "http://127.0.0.1:8004"
    # Bearer tokens of mutating endpoints (comma-separated); empty: open (development).
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Bearer tokens of reads; empty: reads stay open. An API token also reads.
    read_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Browser origins allowed to call the APIs from another origin (CORS); empty: none.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Largest request body a service accepts (413 beyond); imports have their own limit.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Per-client limit of acquire and localize requests: a burst, then so many a minute
    # (429 with Retry-After beyond); 0 a minute: no limit.
    rate_limit_burst: int = Field(default=60, ge=1)
    rate_limit_per_minute: float = Field(default=120.0, ge=0)
    # An upstream that has not answered within this many seconds is reported down (503).
    gateway_upstream_timeout_s: float = Field(default=30.0, gt=0)
    # Larger request bodies are refused (413) before they reach a service.
    gateway_max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)

    # --- web page -----------------------------------------------------------
    # Optional map tiles ("https://tiles.example/{z}/{x}/{y}.png"); empty keeps the
    # page on its offline base layer (outlines, graticule), so nothing leaves the host.
    map_tile_url: str = ""
    map_tile_attribution: str = ""

    # --- receivers --------------------------------------------------------
    stations_file: Path = PACKAGE_DATA / "stations-simulated.yaml"
    scenario_file: Path = PACKAGE_DATA / "scenario-default.yaml"
    simulator_enabled: bool = True
    simulator_control_port: int = 8070
    receiver_connect_timeout_s: float = 5.0
    receiver_first_frame_timeout_s: float = 5.0
    receiver_stall_timeout_s: float = 3.0
    # Receivers of one acquisition wait for each other's handshake (a common start time,
    # so their captures overlap) at most this long; a later one starts on its own.
    receiver_start_wait_s: float = 3.0
    # The closing handshake after the last block; past it the connection is dropped
    # (the samples are all in), so a slow receiver cannot hold a channel up for long.
    receiver_close_timeout_s: float = 0.5
    receiver_password: SecretStr = SecretStr("")
    min_receivers: int = 3

    # --- acquisition scheduling and recovery ---------------------------------
    # How long an acquisition may wait for free channels when the request names no limit.
    acquisition_max_wait_s: float = Field(default=600.0, gt=0)
    # Beyond its duration: connecting, "too busy" retries, measuring, storing, committing.
    acquisition_finish_allowance_s: float = Field(default=30.0, gt=0)
    # A receiver answering "too busy" is tried again for this long before it is an error.
    receiver_busy_retry_s: float = Field(default=10.0, ge=0)
    # PostgreSQL, S3 or the broker failing mid-task: retried with backoff for this long.
    dependency_retry_s: float = Field(default=20.0, ge=0)
    # A worker renews its claims and channel leases; unrenewed for this long, they lapse.
    claim_ttl_s: float = Field(default=20.0, gt=1)
    # Sweeper period: deadlines, lapsed claims, leftover objects, unpublished tasks.
    sweep_interval_s: float = Field(default=5.0, gt=0)
    # Acquisitions one acquisition worker process runs at once (they mostly wait on I/O).
    acquisition_concurrency: int = Field(default=64, ge=1)
    # Localization and training processes of the compute worker.
    compute_concurrency: int = Field(default=2, ge=1)
    # Celery node name of a worker ("%h": the host name); empty: unique per process.
    # Two workers with one name on a broker fight over their remote-control queue.
    worker_node_name: str = ""

    # --- imports (heimdall.imports) -------------------------------------------
    # Largest upload POST /api/v1/acquisition/import accepts (every file of one import
    # together); the gateway lets requests to it through up to this size. The API holds
    # an import in memory while it checks it: about 3x this at most.
    import_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # Files (recordings and positions files) one import may carry.
    import_max_files: int = Field(default=64, ge=1, le=1000)

    # --- localization -----------------------------------------------------
    # Seconds of each recording used for TDOA (the central part), up to the
    # recording's length. A longer span averages the receivers' fading echoes out of
    # the lags; the lags are most of a localization's time and scale with it. 3 s
    # (realistic benchmark, 640 scenarios, docs/decisions.md): TDOA median 0.53 ->
    # 0.49 km, fused 0.54 -> 0.48 km against 2 s, with 7 x 5 s p95 70-97 ms; 4 s
    # gains more (0.46 km) but leaves the 100 ms p95 (108 ms over 40 scenarios).
    tdoa_window_s: float = 3.0
    # Seconds of each known-source recording used for the training's TDOA lags (the
    # central part), from which the receivers' clock offsets and timing sigmas are
    # fitted; None (the default): the localization's window. A longer span averages
    # more of the fading echoes out of each lag and fits the offsets better (the whole
    # 5 s: TDOA median 0.45 -> 0.44 km, one seed), but the sigmas fitted with them then
    # describe lags of another span than a localization's, and its ellipses over-covered
    # (96.0 -> 97.2 %, past issue 15's 98 % bound): docs/localization.md, "The
    # training's own TDOA window".
    training_tdoa_window_s: float | None = Field(default=None, gt=0)
    # One receiver's GPS timestamp error after averaging over the window.
    gps_timing_sigma_ns: float = 100.0
    localize_after_acquisition: bool = True

    # Prefix for every Celery queue name, so that several deployments (or a test
    # run beside a development stack) can share one broker without stealing work.
    queue_prefix: str = ""

    # --- local runtime ------------------------------------------------------
    state_dir: Path = Path(".heimdall")
    log_level: str = "INFO"

    @field_validator("api_tokens", "read_tokens", "cors_origins", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("map_tile_url")
    @classmethod
    def _tile_template(cls, value: str) -> str:
        if value and (
            urlsplit(value).scheme not in ("http", "https")
            or not all(part in value for part in ("{z}", "{x}", "{y}"))
        ):
            raise ValueError("must be an http(s) URL template with {z}, {x} and {y}")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment is not Environment.production:
            return self
        problems = _production_problems(self)
        if problems:
            raise InsecureSettingsError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def training_window_s(self) -> float:
        """The TDOA window the training correlates known sources over (seconds)."""
        return self.training_tdoa_window_s or self.tdoa_window_s

    @property
    def sync_database_url(self) -> str:
        return self.database_url.get_secret_value()

    def service_ports(self) -> dict[str, int]:
        return {
            "api-gateway": self.gateway_port,
            "rf-acquisition": self.acquisition_port,
            "training": self.training_port,
            "inference": self.inference_port,
            "data-ingestion-web": self.ingestion_port,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


DEVELOPMENT_DEFAULTS = Settings.model_construct()


def _plain(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _production_problems(settings: Settings) -> list[str]:
    """Every reason these settings are unfit for production, each naming its setting.
    No message carries a secret's value."""
    problems = []
    for name, default in {
        "s3_access_key": DEVELOPMENT_DEFAULTS.s3_access_key,
        "s3_secret_key": DEVELOPMENT_DEFAULTS.s3_secret_key,
    }.items():
        value = _plain(getattr(settings, name))
        if value.lower() in PLACEHOLDER_SECRETS or value == default.get_secret_value():
            problems.append(f"HEIMDALL_{name.upper()} is missing, a placeholder or the default")
    for name in ("database_url", "broker_url"):
        url = _plain(getattr(settings, name))
        password = urlsplit(url).password
        if (
            password is None
            or password.lower() in PLACEHOLDER_SECRETS
            or url == _plain(getattr(DEVELOPMENT_DEFAULTS, name))
        ):
            problems.append(f"HEIMDALL_{name.upper()} has no password or a placeholder one")
    if not settings.api_tokens:
        problems.append("HEIMDALL_API_TOKENS is empty: mutating endpoints would be open")
    for kind, tokens in (
        ("HEIMDALL_API_TOKENS", settings.api_tokens),
        ("HEIMDALL_READ_TOKENS", settings.read_tokens),
    ):
        if any(len(t.get_secret_value()) < MIN_TOKEN_LENGTH for t in tokens):
            problems.append(f"{kind} has a token shorter than {MIN_TOKEN_LENGTH} characters")
    if settings.simulator_enabled:
        problems.append("HEIMDALL_SIMULATOR_ENABLED is true: no simulated receivers in production")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        values = value if isinstance(value, list) else [value]
        if any(marker in _plain(v).lower() for v in values for marker in PLACEHOLDER_MARKERS):
            problems.append(f"HEIMDALL_{name.upper()} is still at a placeholder")
    return problems
