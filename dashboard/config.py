"""Configuration: safe defaults, overridden by DASHBOARD_* environment variables."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

ENV_PREFIX = "DASHBOARD_"


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
    for name, value in os.environ.items():
        if name.startswith(ENV_PREFIX):
            config[name.removeprefix(ENV_PREFIX)] = _coerce(value)
    config.update(overrides or {})
    _check_types(config)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret(instance_path)
    config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(config["DATABASE_URL"])
    return config


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
