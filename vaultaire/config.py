"""Settings from a TOML file and the command line, validated, with one-line errors."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from attrs import Factory, evolve, fields, frozen

from vaultaire.config_backends import check_shared_catalog, validate_backends
from vaultaire.config_error import ConfigError

# Imported from here by the rest of the code: the names stay where they always were.
__all__ = ["ConfigError", "Settings", "build", "check_shared_catalog", "load_file", "redact_url", "worker_count"]


_LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


@frozen
class Settings:
    """Everything the daemon needs to start. Defaults give a working dev server."""

    data: str = "vaultaire-data"
    listen: str = "tcp:8080"
    # Set when no listen address was given and the daemon runs on development keys:
    # ``listen`` is then loopback only (see vaultaire.bootstrap.DEVELOPMENT_LISTEN).
    development_loopback: bool = False
    ops: str = "tcp:9100:interface=127.0.0.1"
    region: str = "us-east-1"
    # The S3 port answers this path for load balancers; '_' can never start a bucket name.
    health_path: str = "/_vaultaire/health"
    max_clock_skew: int = 900
    # Base domains for virtual-hosted-style requests (bucket.DOMAIN); path style always works.
    domains: tuple[str, ...] = ()
    # Files the workers map into memory (prometheus multiprocess metrics): on tmpfs, never on
    # the data disk, where a full disk turns growing a mapping into SIGBUS. Empty:
    # $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /dev/shm/vaultaire-<uid>-<hash of data>.
    runtime_dir: str = ""
    # Writes are refused (507) when they would leave less free space than this on the catalog's
    # or a local driver's filesystem, so reads, listings and deletes keep working on a full disk.
    # -1: the smaller of 1% of the filesystem and 1 GiB; 0: no reserve.
    free_space_reserve: int = -1
    # A worker whose event loop has not ticked for this many seconds is killed and replaced.
    heartbeat_timeout: int = 30
    # S3 worker processes sharing the listening port (SO_REUSEPORT); 0 means one per core.
    # 1 keeps everything in one process (no supervisor).
    workers: int = 0
    log_level: str = "info"
    events_max_bytes: int = 64 * 2**20
    events_rotate_daily: bool = True
    # Parts but the last must be at least this big (S3: 5 MiB); lower it only for tests and benchmarks.
    min_part_size: int = 5 * 2**20
    # Unfinished multipart uploads are aborted, and their parts freed, after this many seconds.
    upload_expiry: int = 7 * 24 * 3600
    # Where a container's bytes live when CreateBucket names no LocationConstraint.
    default_placement: str = "local"
    # Blobs an overwrite or delete replaced are freed this many seconds later when a read
    # already streaming them may still need them (a multipart object's later parts, an
    # upstream's blob); a GET that started finishes with its bytes if it lasts less than this.
    free_grace: int = 3600
    # Objects of at most this many bytes, PUT with their size on a plain local placement, are
    # kept in the catalog, durable with their row in one group commit: no fsync of their own.
    # 0: every object is a blob file. See vaultaire/engine/inline.py.
    inline_max_bytes: int = 64 * 1024
    # How often blobs queued as garbage (and dead writers' unfinished blobs) are looked for and freed:
    # once per deployment, whichever gateway's turn it is.
    garbage_sweep_seconds: int = 600
    # [drivers.NAME] tables (type = "local" | "s3" | "rclone" | "memory", and the type's settings);
    # a "local" driver on <data>/blobs exists unless the file defines one of that name.
    drivers: dict[str, Any] = Factory(dict)
    # [placements.NAME] tables: policy = "mirror" | "failover" over drivers = [...].
    placements: dict[str, Any] = Factory(dict)
    # The key that seals secret keys in the catalog: base64 of 32 bytes, inline or in a file.
    # Neither given: DATA/master.key, created (mode 0600) at first start.
    master_key: str = ""
    master_key_file: str = ""
    # SSE-C keys are refused over plain HTTP (400, as S3 does); true allows them (loopback, tests).
    sse_c_plain_http: bool = False
    # true: every new object is encrypted at rest, SSE-S3 when neither the request nor the
    # bucket's default encryption names a method (S3's own behaviour since 2023).
    encrypt_all_objects: bool = False
    # [access] public_buckets = false forbids public buckets entirely: every bucket then acts as
    # if its public access block had all four switches on, whatever it says (issue 14).
    public_buckets: bool = True
    # Usage metering: request counters reach the catalog every flush_seconds; stored
    # byte-hours are exact at every change and closed off hourly by the rollup.
    usage_flush_seconds: int = 10
    usage_rollup_seconds: int = 3600
    price_per_tb_month: float = 3.99
    # Per-tenant metric series: the first N tenants seen get their own label, the rest "_other".
    metrics_tenant_limit: int = 100
    # Server-wide CORS rules ([[cors.rules]] tables) for containers without their own
    # configuration; checked as S3 checks a PutBucketCors body when the service is built.
    cors_rules: tuple[Any, ...] = ()
    # Connections (see vaultaire/api/http.py). The listen backlog: 0 means 1024, and never
    # more than the kernel's net.core.somaxconn.
    backlog: int = 0
    # Seconds a client has to send a whole request head (request line and headers).
    header_timeout: float = 30.0
    # A body must bring at least min_body_rate bytes per second, measured over windows of
    # body_timeout seconds (so a body silent for body_timeout is always dropped).
    body_timeout: float = 60.0
    min_body_rate: int = 500
    # Seconds a response may wait on a client that does not read it.
    send_timeout: float = 60.0
    # Seconds a kept-alive connection may stay idle between requests.
    idle_timeout: float = 75.0
    # Open S3 connections per process; more are answered 503 SlowDown and closed.
    max_connections: int = 1024
    # Seconds in a lifecycle "day" (rules' Days, NoncurrentDays, DaysAfterInitiation); rules are
    # evaluated at least this often and at start. A testing aid, as Ceph RGW's rgw_lc_debug_interval.
    lifecycle_day_seconds: float = 86400.0
    # The web console (vaultaire/console): an endpoint string, "" for none. Like MinIO's 9001.
    console: str = "tcp:9001:interface=127.0.0.1"
    # The S3 URL the console's share links and downloads name, as the browser reaches it;
    # "" derives it from the S3 listen endpoint (loopback when it listens everywhere).
    console_s3_url: str = ""
    # Seconds a console session lasts without use.
    console_session_seconds: int = 3600
    # The deployment's operator credential for the console's operator pages (tenants, users and
    # keys, quotas, usage and bills): not a tenant key, it signs no S3 request. "" for none.
    console_admin_key: str = ""
    console_admin_secret: str = ""
    # How often the operator's charts sample the ops site's metrics (6 hours of samples are kept).
    console_metrics_seconds: float = 10.0
    # Many gateways, one deployment (issue 17): the catalog every gateway shares, as a URL
    # ("postgresql://USER:PASS@HOST:PORT/DB?sslmode=...", or "sqlite:///ABSOLUTE/PATH" for
    # gateways on one machine). "": the SQLite catalog in the data directory, this box alone.
    catalog_url: str = ""
    # Connections each process keeps to a PostgreSQL catalog, and how long one statement may run.
    catalog_pool_size: int = 10
    catalog_statement_timeout: float = 30.0


# TOML table -> {key in the table: Settings field}
_TOML_LAYOUT: dict[str, dict[str, str]] = {
    "server": {
        "data": "data",
        "listen": "listen",
        "ops": "ops",
        "region": "region",
        "health_path": "health_path",
        "max_clock_skew": "max_clock_skew",
        "domains": "domains",
        "workers": "workers",
        "runtime_dir": "runtime_dir",
        "heartbeat_timeout": "heartbeat_timeout",
        "free_space_reserve": "free_space_reserve",
        "backlog": "backlog",
    },
    "connections": {
        "header_timeout": "header_timeout",
        "body_timeout": "body_timeout",
        "min_body_rate": "min_body_rate",
        "send_timeout": "send_timeout",
        "idle_timeout": "idle_timeout",
        "max_connections": "max_connections",
    },
    "multipart": {
        "min_part_size": "min_part_size",
        "upload_expiry": "upload_expiry",
    },
    "placement": {
        "default": "default_placement",
        "free_grace": "free_grace",
        "sweep_seconds": "garbage_sweep_seconds",
    },
    "storage": {"inline_max_bytes": "inline_max_bytes"},
    "security": {
        "master_key": "master_key",
        "master_key_file": "master_key_file",
        "sse_c_plain_http": "sse_c_plain_http",
        "encrypt_all_objects": "encrypt_all_objects",
    },
    "metering": {
        "flush_seconds": "usage_flush_seconds",
        "rollup_seconds": "usage_rollup_seconds",
        "price_per_tb_month": "price_per_tb_month",
        "tenant_label_limit": "metrics_tenant_limit",
    },
    "cors": {
        "rules": "cors_rules",
    },
    "lifecycle": {"day_seconds": "lifecycle_day_seconds"},
    "catalog": {
        "url": "catalog_url",
        "pool_size": "catalog_pool_size",
        "statement_timeout": "catalog_statement_timeout",
    },
    "console": {
        "listen": "console",
        "s3_url": "console_s3_url",
        "session_seconds": "console_session_seconds",
        "admin_key": "console_admin_key",
        "admin_secret": "console_admin_secret",
        "metrics_seconds": "console_metrics_seconds",
    },
    "access": {
        "public_buckets": "public_buckets",
    },
    "logging": {
        "level": "log_level",
        "events_max_bytes": "events_max_bytes",
        "events_rotate_daily": "events_rotate_daily",
    },
}


def load_file(path: str) -> dict[str, Any]:
    """Read a TOML config file into Settings field names."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path!r} is not valid TOML: {e}") from None
    values: dict[str, Any] = {}
    for table, content in document.items():
        if table in ("drivers", "placements"):
            # Tables of named tables; their contents are checked by validate().
            if not isinstance(content, dict):
                raise ConfigError(f"config file {path!r}: [{table}] must hold tables like [{table}.NAME]")
            values[table] = content
            continue
        layout = _TOML_LAYOUT.get(table)
        if layout is None:
            raise ConfigError(f"config file {path!r}: unknown section [{table}]")
        if not isinstance(content, dict):
            raise ConfigError(f"config file {path!r}: [{table}] must be a table")
        for key, value in content.items():
            if key not in layout:
                raise ConfigError(f"config file {path!r}: unknown setting {table}.{key}")
            values[layout[key]] = value
    return values


_CONNECTION_SECONDS = ("header_timeout", "body_timeout", "send_timeout", "idle_timeout")


def build(file_values: Mapping[str, Any], overrides: Mapping[str, Any]) -> Settings:
    """Defaults, then the file, then command-line overrides (None means not given)."""
    merged = dict(file_values)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    for name in (
        "price_per_tb_month",
        "lifecycle_day_seconds",
        "catalog_statement_timeout",
        "console_metrics_seconds",
        *_CONNECTION_SECONDS,
    ):
        if isinstance(merged.get(name), int) and not isinstance(merged[name], bool):
            merged[name] = float(merged[name])
    for name in ("domains", "cors_rules"):
        if isinstance(merged.get(name), list):
            merged[name] = tuple(merged[name])
    settings = evolve(Settings(), **merged)
    validate(settings)
    return settings


def worker_count(settings: Settings) -> int:
    """How many S3 processes to run: the setting, or one per core when it is 0."""
    if settings.workers:
        return settings.workers
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (taskset, cpusets)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def validate(settings: Settings) -> None:
    defaults = Settings()
    for f in fields(Settings):
        value = getattr(settings, f.name)
        expected = type(getattr(defaults, f.name))
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigError(f"setting {f.name!r} must be {expected.__name__}, not {type(value).__name__} {value!r}")
    for domain in settings.domains:
        if not isinstance(domain, str) or not domain or domain.startswith(".") or "/" in domain:
            raise ConfigError(f"setting 'domains' has a bad entry {domain!r}: give host names like 's3.example.com'")
    if not settings.data:
        raise ConfigError("setting 'data' (the data directory) must not be empty")
    if settings.log_level not in _LOG_LEVELS:
        raise ConfigError(f"setting 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    if not settings.health_path.startswith("/_"):
        raise ConfigError("setting 'health_path' must start with '/_' so it can never be a bucket name")
    for name in (
        "heartbeat_timeout",
        "max_clock_skew",
        "events_max_bytes",
        "upload_expiry",
        "usage_flush_seconds",
        "usage_rollup_seconds",
        "console_session_seconds",
        "console_metrics_seconds",
        "garbage_sweep_seconds",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name!r} must be positive")
    if settings.free_grace < 0:
        raise ConfigError("setting 'free_grace' must not be negative (0 frees replaced blobs at once)")
    if settings.price_per_tb_month < 0:
        raise ConfigError("setting 'price_per_tb_month' must not be negative")
    if settings.metrics_tenant_limit < 0:
        raise ConfigError("setting 'metrics_tenant_limit' must not be negative")
    if settings.workers < 0:
        raise ConfigError("setting 'workers' must be 0 (one per core) or a positive number of processes")
    for name in _CONNECTION_SECONDS:
        if not 0 < getattr(settings, name) < 86400:
            raise ConfigError(f"setting {name!r} must be a number of seconds above 0 and below a day")
    if settings.backlog < 0 or settings.min_body_rate < 0:
        raise ConfigError("settings 'backlog' and 'min_body_rate' must not be negative")
    if not settings.lifecycle_day_seconds > 0:
        raise ConfigError(
            "setting 'lifecycle_day_seconds' ([lifecycle] day_seconds) must be a positive number of seconds"
        )
    if settings.console_s3_url and not settings.console_s3_url.startswith(("http://", "https://")):
        raise ConfigError("setting [console] s3_url must start with http:// or https://")
    if bool(settings.console_admin_key) != bool(settings.console_admin_secret):
        raise ConfigError("settings [console] admin_key and admin_secret go together: set both or neither")
    if settings.console_admin_secret and len(settings.console_admin_secret) < 16:
        raise ConfigError("setting [console] admin_secret must have at least 16 characters")
    if settings.max_connections < 1:
        raise ConfigError("setting 'max_connections' must be at least 1")
    if not 0 <= settings.inline_max_bytes <= 2**20:
        raise ConfigError("setting [storage] inline_max_bytes must be between 0 (none inline) and 1048576 bytes")
    if settings.free_space_reserve < -1:
        raise ConfigError("setting 'free_space_reserve' is bytes (0: none) or -1 (min of 1% and 1 GiB)")
    if settings.min_part_size < 0:
        raise ConfigError("setting 'min_part_size' must not be negative")
    if not settings.region or not all(c.isalnum() or c == "-" for c in settings.region):
        raise ConfigError(f"setting 'region' {settings.region!r} must be letters, digits and '-'")
    _validate_catalog(settings)
    validate_backends(settings)


def _validate_catalog(settings: Settings) -> None:
    if settings.catalog_pool_size < 1:
        raise ConfigError("setting [catalog] pool_size must be at least 1 connection")
    if not 0 < settings.catalog_statement_timeout < 86400:
        raise ConfigError("setting [catalog] statement_timeout must be a number of seconds above 0 and below a day")
    url = settings.catalog_url
    if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ConfigError(
            f"setting [catalog] url {redact_url(url)!r} must start with postgresql:// (a shared PostgreSQL)"
            " or sqlite:/// and an absolute path (gateways on one machine)"
        )


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line or an error."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
