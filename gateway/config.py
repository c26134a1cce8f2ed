"""Settings read from the environment (see shared CONTRACT.md), validated once at start."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEV_SECRET_KEY = "elimu-dev-only-secret-do-not-use-in-production"
SMS_BACKENDS = ("outbox", "africastalking")
LOG_FORMATS = ("text", "json")
# deploy/elimu.env.example marks what must be set; a secret left as it is would be a published one
PLACEHOLDER = "CHANGE-ME"
PLACEHOLDER_CHECKED = ("DATABASE_URL", "ELIMU_SECRET_KEY", "ELIMU_WEBHOOK_TOKEN", "AT_API_KEY")
USSD_CODE = re.compile(r"\*[0-9]+(\*[0-9]+)*#")  # *384*1234#, ASCII digits (\d takes any script's)
USSD_CODE_MAX = 24  # characters: real codes are short; every screen naming one stays within 160


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line naming the variable."""


def _default_instance_path() -> Path:
    return Path(os.environ.get("ELIMU_INSTANCE_PATH") or Path.cwd() / "instance")


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads. Build with :meth:`from_env`."""

    database_url: str
    redis_url: str | None = None
    sms_backend: str = "outbox"
    env: str = "development"
    secret_key: str = DEV_SECRET_KEY
    webhook_token: str | None = None
    ussd_code: str = "*384*1234#"
    instance_path: Path = field(default_factory=_default_instance_path)
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "mymaster"
    # Africa's Talking
    at_username: str | None = None
    at_api_key: str | None = None
    at_sender_id: str | None = None
    at_short_code: str | None = None
    at_api_base_url: str | None = None
    # SMS pipeline
    sms_rate_per_second: float = 50.0
    sms_concurrency: int = 8  # requests to the provider in flight at once per worker process
    # Edge hardening
    trusted_proxies: int = 0
    allowed_networks: tuple[str, ...] = ()
    max_body_bytes: int = 16 * 1024
    # PostgreSQL waits (0: none): the web service's statements, every process's connects
    db_statement_timeout_ms: int = 3000
    db_connect_timeout_s: int = 3
    ussd_hops_per_minute: int = 30  # per phone; 0 switches the limit off
    sms_per_minute: int = 6  # inbound SMS answered per phone a minute; 0 switches the limit off
    results_per_hour: int = 10  # results queries answered per phone an hour; 0 switches it off
    generic_ussd_fields: str = ""  # role=name pairs for the generic CON/END adapter
    # Operator experience
    simulator_enabled: bool = True
    log_format: str = "text"

    @property
    def dev_mode(self) -> bool:
        return self.env == "development"

    @property
    def simulator_served(self) -> bool:
        """Whether ``/simulator`` is served: ``ELIMU_SIMULATOR``, outside development only with
        ``ELIMU_WEBHOOK_TOKEN`` (its API acts in any phone's name, so it needs the token too)."""
        return self.simulator_enabled and (self.dev_mode or self.webhook_token is not None)

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read and validate the environment; raise ConfigError with a one-line reason."""
        env = dict(os.environ if environ is None else environ)
        _check_placeholders(env)
        instance_path = _instance_path(env)

        database_url = env.get("DATABASE_URL") or ""
        if database_url:
            database_url = _check_database_url(database_url)
        else:
            database_url = f"sqlite:///{instance_path / 'elimu.sqlite3'}"

        redis_url = env.get("REDIS_URL") or None
        if redis_url:
            _check_redis_url(redis_url)

        sentinels = _sentinels(env.get("ELIMU_REDIS_SENTINELS", ""))

        mode = (env.get("ELIMU_ENV") or ("production" if env.get("DATABASE_URL") else "development")).lower()
        if mode not in ("development", "production"):
            raise ConfigError(f"ELIMU_ENV must be 'development' or 'production', not {mode!r}")

        secret = env.get("ELIMU_SECRET_KEY") or ""
        if not secret:
            if mode != "development":
                why = "ELIMU_ENV=production" if env.get("ELIMU_ENV") else "production mode, the default once DATABASE_URL is set"
                raise ConfigError(f"ELIMU_SECRET_KEY is required ({why}): set it to a random secret of 16+ "
                                  "characters and keep it (it keys every stored PIN and code); "
                                  "ELIMU_ENV=development only to try the service")
            warnings.warn("ELIMU_SECRET_KEY is unset: using a development-only key", stacklevel=2)
            secret = DEV_SECRET_KEY
        elif len(secret) < 16:
            raise ConfigError("ELIMU_SECRET_KEY must be at least 16 characters")

        backend = (env.get("SMS_BACKEND") or "outbox").lower()
        if backend not in SMS_BACKENDS:
            raise ConfigError(f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}, not {backend!r}")
        if backend == "africastalking" and not (env.get("AT_USERNAME") and env.get("AT_API_KEY")):
            raise ConfigError("SMS_BACKEND=africastalking needs AT_USERNAME and AT_API_KEY")

        base_url = env.get("AT_API_BASE_URL") or None
        if base_url and urlparse(base_url).scheme not in ("http", "https"):
            raise ConfigError(f"AT_API_BASE_URL must be an http(s) URL, not {base_url!r}")

        values: dict[str, object] = dict(
            database_url=database_url,
            redis_url=redis_url,
            redis_sentinels=sentinels,
            redis_sentinel_master=env.get("ELIMU_REDIS_SENTINEL_MASTER") or "mymaster",
            sms_backend=backend,
            env=mode,
            secret_key=secret,
            webhook_token=env.get("ELIMU_WEBHOOK_TOKEN") or None,
            ussd_code=ussd_code_setting(env),
            instance_path=instance_path,
            # a key pasted from a file often brings its newline, which no HTTP header may carry
            at_username=(env.get("AT_USERNAME") or "").strip() or None,
            at_api_key=(env.get("AT_API_KEY") or "").strip() or None,
            at_sender_id=env.get("AT_SENDER_ID") or None,
            at_short_code=env.get("AT_SHORT_CODE") or None,
            at_api_base_url=base_url,
            sms_rate_per_second=_number(env, "ELIMU_SMS_RATE", 50.0),
            sms_concurrency=_whole(env, "ELIMU_SMS_CONCURRENCY", 8, 1, 64),
            trusted_proxies=_whole(env, "ELIMU_TRUSTED_PROXIES", 0, 0, 100),
            allowed_networks=_networks(env.get("ELIMU_ALLOWED_NETWORKS", "")),
            max_body_bytes=_whole(env, "ELIMU_MAX_BODY_BYTES", 16 * 1024, 1024, 16 * 1024 * 1024),
            db_statement_timeout_ms=_whole(env, "ELIMU_DB_STATEMENT_TIMEOUT_MS", 3000, 0, 600_000),
            db_connect_timeout_s=_whole(env, "ELIMU_DB_CONNECT_TIMEOUT_S", 3, 0, 600),
            ussd_hops_per_minute=_whole(env, "ELIMU_USSD_HOPS_PER_MINUTE", 30, 0, 100_000),
            sms_per_minute=_whole(env, "ELIMU_SMS_PER_MINUTE", 6, 0, 100_000),
            results_per_hour=_whole(env, "ELIMU_RESULTS_PER_HOUR", 10, 0, 100_000),
            generic_ussd_fields=_generic_fields(env.get("ELIMU_GENERIC_USSD_FIELDS", "")),
            simulator_enabled=_flag(env, "ELIMU_SIMULATOR", default=(mode == "development")),
            log_format=_log_format(env, mode),
        )
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown setting {key!r}")
            values[key] = value
        return cls(**values)  # type: ignore[arg-type]


def _check_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a valid SQLAlchemy URL: {url!r}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"DATABASE_URL must point to PostgreSQL or SQLite, not {parsed.get_backend_name()!r}")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would look for psycopg2.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _check_redis_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, not {url!r}")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"REDIS_URL has a malformed port: {url!r}") from None
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ConfigError(f"REDIS_URL has no host: {url!r}")


def _check_placeholders(env: dict[str, str]) -> None:
    """Refuse a setting still holding the example file's CHANGE-ME (its value is not shown)."""
    for name in PLACEHOLDER_CHECKED:
        if PLACEHOLDER in (env.get(name) or ""):
            raise ConfigError(f"{name} still holds the {PLACEHOLDER} placeholder of deploy/elimu.env.example: "
                              "set it (docs/deploy.md)")


def _instance_path(env: dict[str, str]) -> Path:
    """ELIMU_INSTANCE_PATH (default ./instance): a folder, or one that can be made (nothing is made here)."""
    path = Path(env.get("ELIMU_INSTANCE_PATH") or Path.cwd() / "instance")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"ELIMU_INSTANCE_PATH must be a folder, but {str(existing)!r} is a file")
    return path


def ussd_code_setting(env: Mapping[str, str]) -> str:
    """ELIMU_USSD_CODE: a service code as dialled, ``*384*1234#`` when unset or empty; ConfigError
    when malformed (``elimu simulate`` reads it here too, without the rest of the settings)."""
    code = (env.get("ELIMU_USSD_CODE") or "*384*1234#").strip()
    if not USSD_CODE.fullmatch(code):
        raise ConfigError(f"ELIMU_USSD_CODE must be a USSD code like *384*1234#, not {code!r}")
    if len(code) > USSD_CODE_MAX:
        raise ConfigError(f"ELIMU_USSD_CODE must be at most {USSD_CODE_MAX} characters, not {len(code)}")
    return code


def _log_format(env: dict[str, str], mode: str) -> str:
    """ELIMU_LOG_FORMAT: ``text`` (the development default) or ``json``."""
    fmt = (env.get("ELIMU_LOG_FORMAT") or ("text" if mode == "development" else "json")).strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"ELIMU_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    return fmt


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"ELIMU_REDIS_SENTINELS entries must be host:port, not {part!r}")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def _generic_fields(raw: str) -> str:
    from .ussd.generic import parse_fields

    try:
        parse_fields(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return raw


def _number(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {raw!r}")
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _whole(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _number(env, name, default)
    if value != int(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {env.get(name)!r}")
    return int(value)


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _networks(raw: str) -> tuple[str, ...]:
    nets = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"ELIMU_ALLOWED_NETWORKS has an invalid network: {part!r}") from None
    return tuple(nets)
