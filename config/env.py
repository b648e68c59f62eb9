"""Typed readers for environment settings and the DATABASE_URL parser.

Each reader names the variable and what it expected when a value is malformed, so a
typo in `.env` stops start-up with a message instead of silently falling back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from common.db.postgresql import POSTGRESQL
from common.networks import parse_networks

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off"}

# Schemes an operator's URL may carry today, mapped to the scheme dj-database-url knows.
# SQLAlchemy spells the driver after a "+": postgresql+asyncpg://, postgresql+psycopg://.
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
SQLITE_SCHEMES = {"sqlite"}


PROJECT_DIR = Path(__file__).resolve().parent.parent


def read_env_file() -> str:
    """Load `.env` (or the file ENV_FILE names; ENV_FILE="" for none) into the
    environment, where values already set win; returns the file read, or "". The one
    reader of it, for Django's settings and for gunicorn's (BIND, WEB_CONCURRENCY, …),
    which are read before Django starts."""
    path = os.environ.get("ENV_FILE", str(PROJECT_DIR / ".env"))
    if not path or not Path(path).is_file():
        return ""
    import environ

    environ.Env.read_env(path)
    return path


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw == "":
        return default
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: expected one of true/false, 1/0, yes/no, on/off"
    )


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = env_str(name)
    if raw == "":
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is too small: expected at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is too large: expected at most {maximum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = env_str(name)
    if raw == "":
        value = default
    else:
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number (seconds)") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is too small: expected at least {minimum}")
    return value


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    raw = env_str(name) or default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of {', '.join(sorted(choices))}")
    return raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    if raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json_object(name: str) -> dict[str, Any]:
    """A JSON object setting ({} when unset): a storage backend's OPTIONS, say."""
    raw = env_str(name)
    if raw == "":
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return value


def env_path(name: str, default: Path, *, base_dir: Path) -> Path:
    """A path setting; a relative one is taken under `base_dir` (the project)."""
    path = Path(env_str(name) or default)
    return path if path.is_absolute() else base_dir / path


def env_networks(name: str) -> list[str]:
    """A comma-separated list of CIDR networks, each checked at start-up."""
    entries = env_list(name, [])
    parse_networks(name, entries)
    return entries


def check_smaller(name: str, value: int, *, than_name: str, than: int) -> None:
    if value >= than:
        raise ImproperlyConfigured(f"{name}={value} must be smaller than {than_name}={than}")


def normalise_database_url(url: str) -> str:
    """Rewrite an operator's SQLAlchemy-style URL into one dj-database-url understands.

    `postgresql+asyncpg://u:p@host/db?sslmode=require` becomes
    `postgresql://u:p@host/db?sslmode=require`; asyncpg's `ssl=require` becomes
    `sslmode=require`, the libpq spelling psycopg reads.
    """
    url = url.strip()
    raw_scheme, colon, rest = url.partition(":")
    scheme, _, _driver = raw_scheme.lower().partition("+")
    if not colon or scheme not in POSTGRES_SCHEMES | SQLITE_SCHEMES:
        return url
    # Rebuilt by hand: urlunsplit() would fold sqlite:////abs/path into a host name.
    path, question, query = rest.partition("?")
    query, hash_sign, fragment = query.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if scheme in POSTGRES_SCHEMES and any(k == "ssl" for k, _ in pairs):
        if not any(k == "sslmode" for k, _ in pairs):
            pairs = [("sslmode", v) if k == "ssl" else (k, v) for k, v in pairs]
        query = urlencode(pairs)
    return f"{scheme}:{path}{question}{query}{hash_sign}{fragment}"


def database_config(
    url: str,
    *,
    base_dir: Path,
    pool: bool = True,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_recycle: float = 300,
    pool_timeout: float = 10,
    connect_timeout: int = 5,
    network_timeout: int = 5,
) -> dict[str, Any]:
    """Django DATABASES["default"] for a DATABASE_URL.

    Postgres gets Django's native psycopg pool (min = pool_size, max = pool_size +
    max_overflow, max_lifetime = pool_recycle) with health checks on checkout; with
    `pool=False` an external pooler owns the connections, so server-side cursors are off.

    Every TCP connection gives up on a network that has stopped answering after about
    `network_timeout` seconds (`network_options`), unless the URL sets libpq's own.
    """
    normalised = normalise_database_url(url)
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(normalised))
    except (dj_database_url.UnknownSchemeError, dj_database_url.ParseError, ValueError) as exc:
        scheme = urlsplit(url.strip()).scheme or "(none)"
        raise ImproperlyConfigured(
            f"DATABASE_URL could not be parsed (scheme {scheme!r}): expected "
            "postgresql://USER:PASS@HOST:PORT/DB?sslmode=require "
            "(postgres://, postgresql+asyncpg:// and postgresql+psycopg:// work too) "
            f"or sqlite:///path/to/db.sqlite3 ({exc})"
        ) from None

    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = config.get("NAME") or ""
        if name and name != ":memory:" and not Path(name).is_absolute():
            config["NAME"] = str(base_dir / name)
        # Several processes write one file (gunicorn's workers, background workers): a
        # transaction takes the write lock when it begins, so none fails half-way with
        # "database is locked" when another wrote first, and waits up to 20 s for it.
        config["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
        return config
    if engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL uses {engine}: this service supports PostgreSQL and SQLite only"
        )
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database: expected .../DBNAME")

    config["ENGINE"] = POSTGRESQL
    options = dict(config.get("OPTIONS", {}))
    options.setdefault("connect_timeout", connect_timeout)
    for name, value in network_options(network_timeout).items():
        options.setdefault(name, value)
    # Django's pool needs CONN_MAX_AGE=0; health checks on checkout are the Django
    # counterpart of SQLAlchemy's pool_pre_ping.
    config["CONN_MAX_AGE"] = 0
    config["CONN_HEALTH_CHECKS"] = True
    if pool:
        options["pool"] = {
            "min_size": pool_size,
            "max_size": pool_size + max_overflow,
            "max_lifetime": pool_recycle,
            "timeout": pool_timeout,
        }
    else:
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    config["OPTIONS"] = options
    return config


def network_options(seconds: int) -> dict[str, int]:
    """libpq's options that bound how long a connection waits on a dead network.

    Without them a connection whose packets are dropped (a link down, a firewall that
    forgets the flow, a host gone without a reset) waits for the kernel's retransmission
    timeout, about 15 minutes on Linux: a request hung on a pooled connection past any
    client's patience (issue 36, measured with a web server's link taken down).
    `tcp_user_timeout` aborts a connection whose sent data has not been acknowledged for
    `seconds` (a query, or the pool's check, into a dead link); keepalives probe a
    connection silent for `seconds` (a query whose answer never comes, an idle pooled
    connection), once a second, and the same user timeout ends it. A live server's
    kernel answers the probes, so a long query is never cut short. Both are ignored on a
    Unix socket, and libpq supports them on Linux (elsewhere the keepalives only)."""
    return {
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": seconds * 1000,
    }
