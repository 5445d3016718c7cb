"""Configuration, read from the environment once.

Nothing else in the package looks at ``os.environ``: `create_app` builds a
`Config` from it (or from a test's overrides) and everything reads that.

The one exception is QC_ASYNC_MODE: run.py reads it, because eventlet and
gevent must monkey-patch before anything else is imported, and hands it to
`create_app`. Every other way in (the `flask` CLI, an import) runs in
"threading" mode: a process that was not monkey-patched must not load
eventlet or gevent at all.
"""
import os
import re
import secrets
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"


class ConfigError(RuntimeError):
    """The environment asks for something the server cannot run with."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 5000
    database_url: str = ""
    secret_key: str = ""
    admin_username: str | None = None
    admin_password: str | None = None
    grace_seconds: float = 30.0
    # A task pushed but not acknowledged by any socket for this long is taken back.
    ack_timeout_seconds: float = 30.0
    message_queue: str | None = None
    # Deployments sharing one Redis keep apart by channel.
    message_queue_channel: str = "qc_live"
    # Set by run.py (see above); anything else runs without eventlet/gevent.
    async_mode: str = "threading"
    production: bool = False
    instance_path: str = str(DEFAULT_INSTANCE)
    # Presence: every process renews its lease this often; a process whose
    # lease is older than lease_seconds is dead and its sockets are forgotten.
    heartbeat_seconds: float = 5.0
    lease_seconds: float = 15.0
    # How often each process looks for abandoned tasks and undispatched work.
    sweep_seconds: float = 1.0
    # werkzeug's method string: "scrypt" (default) or e.g. "pbkdf2:sha256:600000".
    password_hash_method: str = "scrypt"
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    cors_origins: tuple[str, ...] = ()
    # Reverse proxies in front (nginx: 1): the client address comes from
    # X-Forwarded-For then, e.g. for login throttling. 0 when exposed directly.
    proxy_hops: int = 0
    max_request_bytes: int = 16 * 1024 * 1024
    max_payload_bytes: int = 64 * 1024
    max_tasks_per_request: int = 100_000
    # POST /tasks/import only: a 100,000-row CSV with payloads needs more than
    # max_request_bytes, which every other route keeps.
    max_import_bytes: int = 64 * 1024 * 1024
    # Concurrent connections one process serves (eventlet's own default is 1024).
    max_connections: int = 10_000
    # Tabs and devices of one user, per namespace, across all processes.
    max_sockets_per_user: int = 10
    # MySQL/MariaDB connections one process keeps open, and how long a request
    # waits for one when all are busy before it answers 503 "unavailable".
    # Overflow connections are closed when returned: under load nearly every
    # checkout would open a new one, so by default there are none.
    db_pool_size: int = 40
    db_max_overflow: int = 0
    db_pool_timeout: float = 10.0
    # A pooled MySQL/MariaDB connection idle for longer than this is pinged
    # before use (one round trip); one in steady use is not (see database.py).
    db_ping_after: float = 5.0
    log_level: str = "INFO"
    # One JSON line per HTTP request on stdout (access_log.py): "off", "on"
    # (Socket.IO's long-polling requests left out), or "all".
    access_log: str = "off"
    # GET /metrics: open when None, else it needs "Authorization: Bearer <token>".
    metrics_token: str | None = None
    # prometheus_client's multi-process directory (PROMETHEUS_MULTIPROC_DIR): the
    # counters of every process on this host, summed, from any one of them.
    metrics_multiproc_dir: str | None = None
    # Upgrade the database schema at start-up (off: `flask db upgrade` by hand,
    # and a server refuses a database that is not at the newest revision).
    auto_migrate: bool = True
    # An offer still unacknowledged this long after it was made is sent again,
    # by the process holding the reviewer's socket, to that socket directly
    # (so it arrives even if the message queue lost it).
    offer_redeliver_seconds: float = 3.0
    # A connection has this long to send its request line and headers, from
    # its accept or the end of its previous response (run.py's servers; 0: no limit).
    header_timeout: float = 10.0
    # Webhooks (webhooks.py): how long one delivery may wait on each network
    # step, how often each process looks for due deliveries, the first
    # back-off ceiling (doubled per attempt, full jitter), how long an event
    # is retried, and whether targets on private or loopback addresses are
    # refused (production's default).
    webhook_timeout: float = 10.0
    webhook_poll_seconds: float = 1.0
    webhook_retry_seconds: float = 1.0
    webhook_give_up_seconds: float = 24 * 3600.0
    webhook_refuse_private: bool = False
    # Origins the reviewer page may show images and frames from (its CSP's
    # img-src and frame-src); anything else is a placeholder on the page.
    media_origins: tuple[str, ...] = ()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **overrides) -> "Config":
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        return replace(self, **overrides)


def _number(environ, name, default, kind=float):
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _positive(environ, name, default: float) -> float:
    value = _number(environ, name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0, got {environ[name]!r}")
    return value


def _flag(environ, name, default: bool) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _persistent_secret(instance: Path) -> str:
    """A random key made on first start and kept under instance/ (mode 0600)."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


_HOST = re.compile(r"^([a-z0-9-]+\.)*[a-z0-9-]+\.?$|^[0-9a-f:.]*:[0-9a-f:.]*$", re.IGNORECASE)


def _media_origins(raw: str) -> tuple[str, ...]:
    """QC_MEDIA_ORIGINS: space-separated origins, each `http(s)://host[:port]`
    as a browser writes it (lower case, no default port), since the page
    compares them with `new URL(src).origin` and the CSP lists them as given."""
    origins = []
    for item in raw.split():
        problem = None
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            parts, port, problem = None, None, "not a URL"
        if problem is None and parts.scheme.lower() not in ("http", "https"):
            problem = "the scheme must be http or https"
        elif problem is None and not parts.hostname:
            problem = "no host"
        elif problem is None and (parts.username is not None or parts.password is not None):
            problem = "no user or password allowed"
        elif problem is None and (parts.path not in ("", "/") or parts.query
                                  or parts.fragment or item.endswith(("?", "#"))):
            problem = "an origin has no path, query or fragment"
        elif problem is None and not _HOST.match(parts.hostname):
            problem = "the host is letters, digits, dots and dashes (punycode), or [IPv6]"
        if problem:
            raise ConfigError(f"QC_MEDIA_ORIGINS: {item!r} is not an origin like "
                              f"https://cdn.example.com or http://127.0.0.1:8081 ({problem})")
        scheme = parts.scheme.lower()
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"  # IPv6
        default = {"http": 80, "https": 443}[scheme]
        origin = f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


_ACCESS_LOG_MODES = {"": "off", "0": "off", "1": "on", "all": "all"}


def from_env(environ=None) -> Config:
    """Build the configuration from environment variables (see README)."""
    env = os.environ if environ is None else environ
    instance = Path(env.get("QC_INSTANCE_PATH") or DEFAULT_INSTANCE)
    production = env.get("QC_ENV", "development").lower() == "production"
    secret = env.get("QC_SECRET_KEY", "")
    if not secret:
        if production:
            raise ConfigError("QC_ENV=production needs QC_SECRET_KEY: refusing to start "
                              "with a generated key")
        secret = _persistent_secret(instance)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'qc_live.sqlite3'}"
    heartbeat = _number(env, "QC_HEARTBEAT_SECONDS", 5.0)
    lease = _number(env, "QC_LEASE_SECONDS", 15.0)
    if lease <= heartbeat:
        raise ConfigError(f"QC_LEASE_SECONDS ({lease}) must be longer than "
                          f"QC_HEARTBEAT_SECONDS ({heartbeat}), or live processes expire")
    access_minutes = int(_number(env, "QC_ACCESS_TOKEN_MINUTES", 15, int))
    refresh_days = int(_number(env, "QC_REFRESH_TOKEN_DAYS", 7, int))
    if access_minutes < 1 or refresh_days < 1:
        # Flask-JWT-Extended reads a zero lifetime as "never expires".
        raise ConfigError("QC_ACCESS_TOKEN_MINUTES and QC_REFRESH_TOKEN_DAYS must be at least 1")
    hash_method = env.get("QC_PASSWORD_HASH_METHOD") or "scrypt"
    try:
        from werkzeug.security import generate_password_hash
        generate_password_hash("probe", method=hash_method)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"QC_PASSWORD_HASH_METHOD {hash_method!r} is not usable: {exc}") \
            from None
    origins = tuple(o.strip() for o in env.get("QC_CORS_ORIGINS", "").split(",") if o.strip())
    pool_size = int(_number(env, "QC_DB_POOL_SIZE", 40, int))
    if pool_size < 1:
        # SQLAlchemy reads a pool size of 0 as "no limit".
        raise ConfigError(f"QC_DB_POOL_SIZE must be at least 1, got {pool_size}")
    access_log = _ACCESS_LOG_MODES.get(env.get("QC_ACCESS_LOG", "").strip())
    if access_log is None:
        raise ConfigError(f"QC_ACCESS_LOG must be 0, 1 or all, got {env['QC_ACCESS_LOG']!r}")
    multiproc_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or None
    if multiproc_dir and not os.path.isdir(multiproc_dir):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR {multiproc_dir!r} is not a directory")
    return Config(
        host=env.get("HOST", "127.0.0.1"),
        port=int(_number(env, "PORT", 5000, int)),
        database_url=database_url,
        secret_key=secret,
        admin_username=env.get("QC_ADMIN_USERNAME") or None,
        admin_password=env.get("QC_ADMIN_PASSWORD") or None,
        grace_seconds=_number(env, "QC_GRACE_SECONDS", 30.0),
        ack_timeout_seconds=_number(env, "QC_ACK_TIMEOUT", 30.0),
        message_queue=env.get("QC_MESSAGE_QUEUE") or None,
        message_queue_channel=env.get("QC_MESSAGE_QUEUE_CHANNEL") or "qc_live",
        production=production,
        instance_path=str(instance),
        heartbeat_seconds=heartbeat,
        lease_seconds=lease,
        sweep_seconds=_number(env, "QC_SWEEP_SECONDS", 1.0),
        password_hash_method=hash_method,
        access_token_minutes=access_minutes,
        refresh_token_days=refresh_days,
        cors_origins=origins,
        proxy_hops=int(_number(env, "QC_PROXY_HOPS", 0, int)),
        max_connections=int(_number(env, "QC_MAX_CONNECTIONS", 10_000, int)),
        max_sockets_per_user=int(_number(env, "QC_MAX_SOCKETS_PER_USER", 10, int)),
        db_pool_size=pool_size,
        db_max_overflow=int(_number(env, "QC_DB_MAX_OVERFLOW", 0, int)),
        db_pool_timeout=_number(env, "QC_DB_POOL_TIMEOUT", 10.0),
        db_ping_after=_number(env, "QC_DB_PING_AFTER", 5.0),
        log_level=env.get("QC_LOG_LEVEL", "INFO").upper(),
        access_log=access_log,
        metrics_token=env.get("QC_METRICS_TOKEN") or None,
        metrics_multiproc_dir=multiproc_dir,
        auto_migrate=_flag(env, "QC_AUTO_MIGRATE", True),
        offer_redeliver_seconds=_number(env, "QC_OFFER_REDELIVER_SECONDS", 3.0),
        header_timeout=_number(env, "QC_HEADER_TIMEOUT", 10.0),
        webhook_timeout=_positive(env, "QC_WEBHOOK_TIMEOUT", 10.0),
        webhook_poll_seconds=_positive(env, "QC_WEBHOOK_POLL_SECONDS", 1.0),
        webhook_retry_seconds=_positive(env, "QC_WEBHOOK_RETRY_SECONDS", 1.0),
        webhook_give_up_seconds=_number(env, "QC_WEBHOOK_GIVE_UP_SECONDS", 24 * 3600.0),
        webhook_refuse_private=_flag(env, "QC_WEBHOOK_REFUSE_PRIVATE", production),
        media_origins=_media_origins(env.get("QC_MEDIA_ORIGINS", "")),
    )
