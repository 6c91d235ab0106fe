"""alerts.toml → frozen dataclasses with the embedded defaults.

The defaults are declared once, here. ``config.example.toml`` shows the same values with a
comment each (a test checks that the two agree). Environment variables
``ALERTS_<SECTION>_<KEY>`` override the file, e.g. ``ALERTS_EMAIL_PASSWORD``. A bad value
raises ``ConfigError`` naming the source, the key and the problem; secret values are never
repeated in messages.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alerts.core.errors import ConfigError

SECRET_KEYS = frozenset({"password", "secret_key", "old_secret_keys", "token", "secret"})
DEFAULT_SECRET = "change-me-in-production"
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///alerts.db"
    echo: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    secret_key: str = field(default=DEFAULT_SECRET, repr=False)
    trusted_proxies: str = ""  # comma-separated addresses whose X-Forwarded-For is believed
    # keys signed with before a rotation: still verified, never used to sign (see core.signing)
    old_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    # reviewers and admins (who approve or administer) must enrol a second factor (TOTP)
    require_2fa: bool = False
    # the process's event loop (alerts/core/loop.py): uvloop, or asyncio's own
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    from_: str = "Urgent Alerts <alerts@localhost>"
    reply_to: str = ""
    pool_size: int = 16
    rate_per_second: float = 0.0  # 0 means no limit
    timeout: float = 30.0
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramSettings:
    token: str = field(default="", repr=False)
    base_url: str = "https://api.telegram.org/bot"
    rate_per_second: float = 25.0
    per_chat_interval: float = 1.0
    allow_paid_broadcast: bool = False
    concurrency: int = 8
    timeout: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PressSettings:
    from_: str = "Urgent Alerts Press Office <press@localhost>"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    url: str = ""
    secret: str = field(default="", repr=False)
    timeout: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatcherSettings:
    lease_seconds: float = 60.0
    max_attempts: int = 8
    concurrency: int = 32
    batch_size: int = 500
    flush_interval: float = 0.05
    poll_seconds: float = 0.5  # the safety poll: queued work wakes the claimers at once
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    unknown_grace_seconds: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerSettings:
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingSettings:
    opens: bool = False
    clicks: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSettings:
    require_second_approver: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class BouncesSettings:
    listen: bool = False
    host: str = "127.0.0.1"
    port: int = 8026
    verp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionsSettings:
    pending_days: int = 7  # unconfirmed subscriptions are removed after this many days (0: never)


@dataclass(frozen=True, slots=True, kw_only=True)
class PathsSettings:
    # A folder of the organisation's own template families, used beside the shipped ones (a
    # family of the same name replaces the shipped one). Relative to the config file's folder.
    templates: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    listen: str = "127.0.0.1:9101"  # `alerts worker`'s /metrics, /livez, /readyz; empty: off


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The whole configuration."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    press: PressSettings = field(default_factory=PressSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    bounces: BouncesSettings = field(default_factory=BouncesSettings)
    subscriptions: SubscriptionsSettings = field(default_factory=SubscriptionsSettings)
    paths: PathsSettings = field(default_factory=PathsSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    source: str = "embedded defaults"

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (for CLI flags and tests)."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


def _key_name(f: dataclasses.Field[Any]) -> str:
    # ``from`` is a Python keyword; the dataclass field is ``from_``.
    return f.name.rstrip("_")


def _describe(key: str, raw: object) -> str:
    return "'***'" if key in SECRET_KEYS else repr(raw)


def _coerce(source: str, section: str, key: str, raw: object, annotation: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    where = f"{source}: [{section}] {key}"
    shown = _describe(key, raw)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if raw not in allowed:
            raise ConfigError(
                f"{where} has value {shown}. Must be one of: {', '.join(allowed)}.",
                details={"key": f"{section}.{key}"},
            )
        return raw
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(
            f"{where} has value {shown}. Not a valid bool.", details={"key": f"{section}.{key}"}
        )
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(
                f"{where} has value {shown}. Not a valid {annotation.__name__}.",
                details={"key": f"{section}.{key}"},
            )
        try:
            value = annotation(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where} has value {shown}. Not a valid {annotation.__name__}.",
                details={"key": f"{section}.{key}"},
            ) from None
        if isinstance(raw, float) and annotation is int and raw != int(raw):
            raise ConfigError(
                f"{where} has value {shown}. Not a valid int.", details={"key": f"{section}.{key}"}
            )
        if value < 0:
            raise ConfigError(
                f"{where} has value {shown}. Must not be negative.", details={"key": f"{section}.{key}"}
            )
        return value
    if annotation == tuple[str, ...]:
        # TOML: an array of strings; the environment: comma-separated
        items = [part.strip() for part in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(
                f"{where} has value {shown}. Not a list of strings.", details={"key": f"{section}.{key}"}
            )
        return tuple(i for i in items if i)
    if annotation is str:
        if not isinstance(raw, str):
            raise ConfigError(
                f"{where} has value {shown}. Not a valid string.", details={"key": f"{section}.{key}"}
            )
        return raw
    raise AssertionError(f"unsupported config type {annotation!r}")  # pragma: no cover


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Settings)
    return {name: hints[name] for name in hints if name != "source"}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the config file (if any) and the environment overrides; validate everything.

    ``path`` None means: ``$ALERTS_CONFIG``, else ``./alerts.toml`` if it exists, else the
    embedded defaults.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "embedded defaults"
    if path is None and env.get("ALERTS_CONFIG"):
        path = env["ALERTS_CONFIG"]
    elif path is None and Path("alerts.toml").exists():
        path = "alerts.toml"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}.") from None

    sections = _section_types()
    for name in data:
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}]. Known: {', '.join(sections)}.")
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        raw_section = data.get(name, {})
        if not isinstance(raw_section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table.")
        fields = {_key_name(f): f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for key in raw_section:
            if key not in fields:
                raise ConfigError(
                    f"{source}: [{name}] {key} is not a known key. Known: {', '.join(fields)}.",
                    details={"key": f"{name}.{key}"},
                )
        values: dict[str, Any] = {}
        for key, f in fields.items():
            env_name = f"ALERTS_{name.upper()}_{key.upper()}"
            if env_name in env:
                values[f.name] = _coerce(f"environment {env_name}", name, key, env[env_name], hints[f.name])
            elif key in raw_section:
                values[f.name] = _coerce(source, name, key, raw_section[key], hints[f.name])
        built[name] = cls(**values)
    if path is not None and built["paths"].templates and "ALERTS_PATHS_TEMPLATES" not in env:
        # A relative folder in a config file means: beside that file, wherever alerts runs from.
        own = Path(path).parent / Path(built["paths"].templates).expanduser()
        built["paths"] = dataclasses.replace(built["paths"], templates=str(own))
    settings = Settings(**built, source=source)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Cross-field checks."""
    src = settings.source
    url = settings.database.url
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            f"{src}: [database] url must start with sqlite+aiosqlite:// or postgresql+asyncpg://.",
            details={"key": "database.url"},
        )
    if settings.server.port > 65535 or settings.email.port > 65535:
        raise ConfigError(f"{src}: a port must be at most 65535.")
    if settings.email.pool_size < 1:
        raise ConfigError(
            f"{src}: [email] pool_size has value {settings.email.pool_size}. Must be at least 1."
        )
    if settings.dispatcher.max_attempts < 1:
        raise ConfigError(f"{src}: [dispatcher] max_attempts must be at least 1.")
    if settings.dispatcher.poll_seconds <= 0:
        raise ConfigError(
            f"{src}: [dispatcher] poll_seconds has value {settings.dispatcher.poll_seconds}. "
            "Must be above 0 (it is the safety net for a lost wake-up)."
        )
    own = settings.paths.templates
    if own and not Path(own).is_dir():
        raise ConfigError(
            f"{src}: [paths] templates has value {own!r}. Not a folder (of template families).",
            details={"key": "paths.templates"},
        )
    if settings.metrics.listen:
        listen_address(settings.metrics.listen, source=src)
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(settings.scheduler.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{src}: [scheduler] timezone has value {settings.scheduler.timezone!r}. Not a known time zone.",
            details={"key": "scheduler.timezone"},
        ) from None


def listen_address(text: str, *, source: str = "") -> tuple[str, int]:
    """``[metrics] listen`` ("HOST:PORT", IPv6 as "[::1]:9101") as (host, port); ConfigError if bad."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"{source or 'config'}: [metrics] listen has value {text!r}. Must be HOST:PORT, e.g. "
            '"127.0.0.1:9101" (or empty: no metrics listener).',
            details={"key": "metrics.listen"},
        )
    return host, int(port)


def require_secret(settings: Settings) -> None:
    """Refuse to send or serve with a guessable ``[server] secret_key``.

    It signs unsubscribe, preference and tracking links and sign-in sessions: with the
    shipped default anyone could forge them (unsubscribe a partner, redirect through our
    domain). ``alerts demo`` makes its own.
    """
    key = settings.server.secret_key
    if key == DEFAULT_SECRET or len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{settings.source}: [server] secret_key is "
            + (
                "the shipped default"
                if key == DEFAULT_SECRET
                else f"shorter than {MIN_SECRET_LENGTH} characters"
            )
            + "; set ALERTS_SERVER_SECRET_KEY to a long random value (e.g. `python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))'`).",
            details={"key": "server.secret_key"},
        )
    for position, old in enumerate(settings.server.old_secret_keys, 1):
        if old == DEFAULT_SECRET or len(old) < MIN_SECRET_LENGTH:
            # a guessable old key would let anyone forge a link that is still accepted
            raise ConfigError(
                f"{settings.source}: [server] old_secret_keys: key {position} is "
                + (
                    "the shipped default"
                    if old == DEFAULT_SECRET
                    else f"shorter than {MIN_SECRET_LENGTH} characters"
                )
                + "; remove it.",
                details={"key": "server.old_secret_keys"},
            )


def as_toml_defaults() -> dict[str, dict[str, Any]]:
    """The embedded defaults keyed as in alerts.toml (used by the config example test)."""
    out: dict[str, dict[str, Any]] = {}
    defaults = Settings()
    for name in _section_types():
        section = getattr(defaults, name)
        out[name] = {
            _key_name(f): list(value) if isinstance(value := getattr(section, f.name), tuple) else value
            for f in dataclasses.fields(section)
        }
    return out
