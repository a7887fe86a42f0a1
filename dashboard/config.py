"""Configuration: safe defaults, overridden by DASHBOARD_* environment variables."""
from __future__ import annotations

import difflib
import os
import re
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
# DASHBOARD_* variables the project reads outside the app; the app leaves them alone.
OUTSIDE_SETTINGS = {"VENV": "scripts/bootstrap.sh", "TEST_POSTGRES_URL": "tests/conftest.py"}
SECRET_MIN_LENGTH = 16
MAKE_A_SECRET = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
DATABASE_FORMS = "sqlite:///path/to/file.sqlite3 or postgresql://user:password@host/database"
# Flask-Babel's translation folder (load_config hands it this one), so the locales checked at start are
# the ones it can load: <locale>/LC_MESSAGES/*.mo. English is the language of the source strings.
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
SOURCE_LOCALE = "en"


def make_instance_folder(instance_path: Path) -> None:
    """The folder of the development secret, the default SQLite database and the demo passwords:
    created readable by its owner only, as those files hold password hashes and customer data."""
    instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _instance_secret(instance_path: Path) -> str:
    """A development secret generated once into the instance folder, never committed."""
    secret_file = instance_path / "secret_key"
    if not secret_file.exists():
        make_instance_folder(instance_path)
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def shipped_locales() -> list[str]:
    """English, then every locale with a compiled catalogue in TRANSLATIONS (as Flask-Babel finds them)."""
    found = {messages.parent.name for messages in TRANSLATIONS.glob("*/LC_MESSAGES")
             if next(messages.glob("*.mo"), None) is not None}
    return [SOURCE_LOCALE, *sorted(found - {SOURCE_LOCALE})]


def _defaults(instance_path: Path) -> dict[str, Any]:
    return {
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


def known_settings() -> set[str]:
    """The settings a DASHBOARD_* variable may set (each is checked at start by _check_settings)."""
    return set(_defaults(Path())) | set(OPTIONAL_SETTINGS)


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config = _defaults(instance_path)
    config.update(_from_environment(known=known_settings()))
    config.update(overrides or {})
    _check_settings(config)
    _check_tracking_data()
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret(instance_path)
    config["SQLALCHEMY_DATABASE_URI"] = database_uri(config["DATABASE_URL"])
    _check_schema(config)
    config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
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
        settings[setting] = value  # as given; _check_settings turns numbers and switches into their type
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
    "WTF_CSRF_TIME_LIMIT": (60, 30 * 86400, "seconds a form's token stays valid"),
}
# Whole-number settings that also take NO_LIMIT (any case) for None, their default: no limit of their own.
NO_LIMIT = "none"
LIMITLESS = ("WTF_CSRF_TIME_LIMIT",)
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# The spellings of a switch, compared without regard to case or surrounding spaces.
SWITCH_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}
SWITCHES = ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY")
# Switches that must stay on, and why.
ALWAYS_ON = {"SESSION_COOKIE_HTTPONLY": "without HttpOnly, page scripts could read the login cookie, and none "
                                        "of Reference Desk's scripts needs to"}
# Settings that take one of a few words, compared without regard to case and kept as spelt here.
CHOICES = {"SESSION_COOKIE_SAMESITE": ("Strict", "Lax", "None")}
# A PostgreSQL schema name as written unquoted (which PostgreSQL folds to lower case), at most 63 bytes.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ConfigurationError(ValueError):
    """A DASHBOARD_* setting the app cannot run with; raised at start, not at the first request."""


def _whole_number(name: str, value: Any) -> int | None:
    lowest, highest, unit = WHOLE_NUMBERS[name]
    if name in LIMITLESS and (value is None or (isinstance(value, str) and value.strip().lower() == NO_LIMIT)):
        return None
    number = value
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool) or not lowest <= number <= highest:
        allowed = f"a whole number from {lowest} to {highest} ({unit})"
        if name in LIMITLESS:
            allowed += f", or {NO_LIMIT} for no limit"
        raise ConfigurationError(f"{ENV_PREFIX}{name} must be {allowed}, got {value!r}")
    return number


def _switch(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in SWITCH_WORDS:
        switch = SWITCH_WORDS[value.strip().lower()]
    elif isinstance(value, bool):
        switch = value
    else:
        on = "/".join(word for word, meaning in SWITCH_WORDS.items() if meaning)
        off = "/".join(word for word, meaning in SWITCH_WORDS.items() if not meaning)
        raise ConfigurationError(f"{ENV_PREFIX}{name} must be true or false ({on} or {off}), got {value!r}")
    if name in ALWAYS_ON and not switch:
        raise ConfigurationError(f"{ENV_PREFIX}{name} must stay true, got {value!r}: {ALWAYS_ON[name]}")
    return switch


def _choice(name: str, value: Any) -> str:
    choices = CHOICES[name]
    for choice in choices:
        if isinstance(value, str) and value.strip().lower() == choice.lower():
            return choice
    raise ConfigurationError(
        f"{ENV_PREFIX}{name} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")


def _locale(name: str, value: Any) -> str:
    shipped = shipped_locales()
    for locale in shipped:  # de-DE and de_de are de_DE
        if isinstance(value, str) and value.strip().replace("-", "_").lower() == locale.lower():
            return locale
    raise ConfigurationError(
        f"{ENV_PREFIX}{name} must be a language Reference Desk has translations for ({', '.join(shipped)}), "
        f"got {value!r}")


def _check_settings(config: dict[str, Any]) -> None:
    """Each setting's rule, once: a value is refused here or stored in the type and spelling Flask uses."""
    for name in WHOLE_NUMBERS:
        config[name] = _whole_number(name, config[name])
    for name in SWITCHES:
        config[name] = _switch(name, config[name])
    for name in CHOICES:
        config[name] = _choice(name, config[name])
    config["BABEL_DEFAULT_LOCALE"] = _locale("BABEL_DEFAULT_LOCALE", config["BABEL_DEFAULT_LOCALE"])
    if config.get("SECRET_KEY") == "":
        raise ConfigurationError(f"{ENV_PREFIX}SECRET_KEY is set but empty: set a secret, or unset it for development")
    if config["SESSION_COOKIE_SAMESITE"] == "None" and not config["SESSION_COOKIE_SECURE"]:
        raise ConfigurationError(
            f"{ENV_PREFIX}SESSION_COOKIE_SAMESITE=None needs {ENV_PREFIX}SESSION_COOKIE_SECURE=true: browsers drop "
            "a SameSite=None cookie that is not Secure, so nobody could log in; use Lax (the default) or Strict")


def _check_schema(config: dict[str, Any]) -> None:
    """DATABASE_SCHEMA goes into each PostgreSQL connection's search_path (the tests' schemas)."""
    schema = config.get("DATABASE_SCHEMA")
    if schema is None:
        return
    name = f"{ENV_PREFIX}DATABASE_SCHEMA"
    if not isinstance(schema, str) or not SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(f"{name} must be a PostgreSQL schema name in lower case (a-z, 0-9 and _, "
                                 f"not starting with a digit, at most 63 characters), got {schema!r}")
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        raise ConfigurationError(f"{name} is for a PostgreSQL database; {ENV_PREFIX}DATABASE_URL is SQLite")


def normalise_database_url(url: str) -> str:
    """postgresql:// URLs are served by psycopg 3, the driver we install (SQLAlchemy's default is psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def database_uri(url: Any) -> str:
    """The SQLAlchemy URL for DATABASE_URL, refused at start if it is not SQLite or PostgreSQL.

    The message names the scheme only: the rest of a URL may hold a password.
    """
    name = f"{ENV_PREFIX}DATABASE_URL"
    uri = normalise_database_url(str(url).strip())  # a pasted trailing space would name another file
    try:
        parsed = make_url(uri)
    except ArgumentError:
        raise ConfigurationError(f"{name} is not a database URL; use {DATABASE_FORMS}") from None
    if parsed.get_backend_name() == "postgres":  # Heroku's old spelling, which SQLAlchemy has no dialect for
        raise ConfigurationError(
            f"{name} uses {parsed.drivername}://, which SQLAlchemy does not read: write postgresql:// instead, "
            "the rest unchanged")
    backend = parsed.get_backend_name()
    if backend != backend.lower() and backend.lower() in ("sqlite", "postgresql"):
        raise ConfigurationError(f"{name} uses {parsed.drivername}://: write the scheme in lower case")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"{name} uses {parsed.drivername}://, which Reference Desk does not support; use {DATABASE_FORMS}")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # sqlite:///, sqlite:// or :memory: would be an empty database in memory, gone with each connection.
        raise ConfigurationError(f"{name} names no SQLite file; use {DATABASE_FORMS}")
    try:
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, ImportError):  # e.g. postgresql+psycopg2:// without psycopg2
        raise ConfigurationError(
            f"{name} asks for the driver {parsed.drivername}://, which is not installed; use {DATABASE_FORMS}"
        ) from None
    return uri
