"""Configuration: safe defaults, overridden by DASHBOARD_* environment variables."""
from __future__ import annotations

import difflib
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import tracking

ENV_PREFIX = "DASHBOARD_"
# Settings without a default below; TRACKING_DATA is read by tracking.data_folder(), and
# DATABASE_SCHEMA is set by the tests for their PostgreSQL schemas.
OPTIONAL_SETTINGS = ("SECRET_KEY", "TRACKING_DATA", "DATABASE_SCHEMA")
# Kept as given: a secret or a path made of digits, or "true", is still text.
TEXT_SETTINGS = ("SECRET_KEY", "DATABASE_URL", "TRACKING_DATA", "DATABASE_SCHEMA")
# DASHBOARD_* variables the project reads outside the app; the app leaves them alone.
OUTSIDE_SETTINGS = {"VENV": "scripts/bootstrap.sh", "TEST_POSTGRES_URL": "tests/conftest.py"}
SECRET_MIN_LENGTH = 16
MAKE_A_SECRET = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
DATABASE_FORMS = "sqlite:///path/to/file.sqlite3 or postgresql://user:password@host/database"


def _instance_secret(instance_path: Path) -> str:
    """A development secret generated once into the instance folder, never committed."""
    secret_file = instance_path / "secret_key"
    if not secret_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def _coerce(value: str) -> Any:
    """Environment values are strings; numbers and booleans are given their type."""
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        return value


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{instance_path / 'dashboard.sqlite3'}",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,  # one working day
        # The CSRF token lives as long as the session (which slides with each request), so a
        # page left open does not fail on a token that expired before the session did.
        "WTF_CSRF_TIME_LIMIT": None,
        "SEARCH_GROUP_LIMIT": 20,
        "BABEL_DEFAULT_LOCALE": "en",
        "TRUSTED_PROXIES": 0,
    }
    config.update(_from_environment(known=set(config) | set(OPTIONAL_SETTINGS)))
    config.update(overrides or {})
    _check_types(config)
    _check_tracking_data()
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret(instance_path)
    config["SQLALCHEMY_DATABASE_URI"] = database_uri(config["DATABASE_URL"])
    return config


def _from_environment(known: set[str]) -> dict[str, Any]:
    """The DASHBOARD_* variables; a misspelt one stops the start instead of being ignored."""
    settings: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        setting = name.removeprefix(ENV_PREFIX)
        if setting in OUTSIDE_SETTINGS:
            continue
        if setting not in known:
            unknown.append(name)
            continue
        settings[setting] = value if setting in TEXT_SETTINGS else _coerce(value)
    if unknown:
        names = sorted(f"{ENV_PREFIX}{setting}" for setting in known | set(OUTSIDE_SETTINGS))
        settings_known = sorted(known | set(OUTSIDE_SETTINGS))  # compared without the shared prefix
        guesses = [f"{ENV_PREFIX}{guess}" for name in sorted(unknown)
                   for guess in difflib.get_close_matches(name.removeprefix(ENV_PREFIX), settings_known, n=1)]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        raise ConfigurationError(
            f"unknown setting {', '.join(sorted(unknown))}{hint}; known settings: {', '.join(names)}")
    if "SECRET_KEY" in settings:
        _check_secret(settings["SECRET_KEY"])
    return settings


def _check_secret(secret: str) -> None:
    """An operator's secret must be one: not blank, not a short word (tests pass theirs as overrides)."""
    name = f"{ENV_PREFIX}SECRET_KEY"
    make = f"make one with: {MAKE_A_SECRET}, or unset it for development"
    if not secret.strip():
        raise ConfigurationError(f"{name} is set but {'empty' if not secret else 'blank'}: {make}")
    if len(secret.strip()) < SECRET_MIN_LENGTH:
        raise ConfigurationError(
            f"{name} is too short ({len(secret.strip())} characters, at least {SECRET_MIN_LENGTH}): {make}")


def _check_tracking_data() -> None:
    """Searches read the courier files on first use; a wrong folder is found at start instead."""
    folder = tracking.data_folder()  # the folder searches will read
    where = f"{tracking.DATA_ENV_VAR}={folder}" if os.environ.get(tracking.DATA_ENV_VAR) else (
        f"the default courier folder {folder} (set {tracking.DATA_ENV_VAR})")
    if not folder.is_dir():
        raise ConfigurationError(f"{where}: no such folder; it must hold the courier *.json files "
                                 "of jkeen/tracking_number_data")
    if next(folder.glob("*.json"), None) is None:
        raise ConfigurationError(f"{where}: the folder holds no courier *.json files "
                                 "(the couriers folder of jkeen/tracking_number_data)")


# Whole-number settings: (lowest, highest, what the number counts).
WHOLE_NUMBERS = {
    "PERMANENT_SESSION_LIFETIME": (60, 30 * 86400, "seconds"),
    "SEARCH_GROUP_LIMIT": (1, 200, "rows per group; a search ranks 200 candidates"),
    "TRUSTED_PROXIES": (0, 10, "reverse proxies"),
}
SWITCHES = ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY")


class ConfigurationError(ValueError):
    """A DASHBOARD_* setting the app cannot run with; raised at start, not at the first request."""


def _check_types(config: dict[str, Any]) -> None:
    for name, (lowest, highest, unit) in WHOLE_NUMBERS.items():
        value = config[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= highest:
            raise ConfigurationError(
                f"{ENV_PREFIX}{name} must be a whole number from {lowest} to {highest} ({unit}), got {value!r}")
    if config.get("SECRET_KEY") == "":
        raise ConfigurationError(f"{ENV_PREFIX}SECRET_KEY is set but empty: set a secret, or unset it for development")
    for name in SWITCHES:
        if not isinstance(config[name], bool):
            raise ConfigurationError(f"{ENV_PREFIX}{name} must be true or false, got {config[name]!r}")


def normalise_database_url(url: str) -> str:
    """postgres:// and postgresql:// URLs are served by psycopg 3, the driver we install."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def database_uri(url: Any) -> str:
    """The SQLAlchemy URL for DATABASE_URL, refused at start if it is not SQLite or PostgreSQL.

    The message names the scheme only: the rest of a URL may hold a password.
    """
    name = f"{ENV_PREFIX}DATABASE_URL"
    uri = normalise_database_url(str(url))
    try:
        parsed = make_url(uri)
    except ArgumentError:
        raise ConfigurationError(f"{name} is not a database URL; use {DATABASE_FORMS}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"{name} uses {parsed.drivername}://, which Reference Desk does not support; use {DATABASE_FORMS}")
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        # sqlite:/// or sqlite:// would be an empty database in memory, gone with each connection.
        raise ConfigurationError(f"{name} names no SQLite file; use {DATABASE_FORMS}")
    try:
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, ImportError):  # e.g. postgresql+psycopg2:// without psycopg2
        raise ConfigurationError(
            f"{name} asks for the driver {parsed.drivername}://, which is not installed; use {DATABASE_FORMS}"
        ) from None
    return uri
