import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from flask_babel import gettext

from dashboard import config, create_app
from dashboard.config import ConfigurationError, known_settings


def test_settings_come_from_dashboard_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SEARCH_GROUP_LIMIT", "7")
    monkeypatch.setenv("DASHBOARD_SECRET_KEY", "from-the-environment")
    app = create_app()
    assert app.config["SEARCH_GROUP_LIMIT"] == 7 and app.config["SECRET_KEY"] == "from-the-environment"


@pytest.mark.parametrize("name,value", [("DASHBOARD_PERMANENT_SESSION_LIFETIME", "1h"),
                                        ("DASHBOARD_SEARCH_GROUP_LIMIT", "abc"),
                                        ("DASHBOARD_SEARCH_GROUP_LIMIT", "0"),
                                        ("DASHBOARD_SEARCH_GROUP_LIMIT", "1000000"),
                                        ("DASHBOARD_TRUSTED_PROXIES", "-1"),
                                        ("DASHBOARD_SECRET_KEY", ""),
                                        ("DASHBOARD_SESSION_COOKIE_SECURE", "maybe"),
                                        ("DASHBOARD_TRACKING_DATA", "/nonexistent/couriers"),
                                        ("DASHBOARD_DATABASE_URL", "foo://x"),
                                        ("DASHBOARD_DATABASE_URL", "not a url"),
                                        ("DASHBOARD_DATABASE_URL", "mysql://u@h/db"),
                                        ("DASHBOARD_DATABASE_URL", "postgresql+psycopg2://u@h/db"),
                                        ("DASHBOARD_DATABASE_URL", ""),
                                        ("DASHBOARD_SECRETKEY", "a-misspelt-but-long-secret")])
def test_a_bad_setting_stops_the_start_with_its_name(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        create_app()


def test_a_tracking_data_folder_without_courier_files_stops_the_start(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    couriers = tmp_path / "couriers"
    couriers.mkdir()
    (couriers / "README.md").write_text("not a courier")
    monkeypatch.setenv("DASHBOARD_TRACKING_DATA", str(couriers))
    with pytest.raises(ConfigurationError, match="DASHBOARD_TRACKING_DATA=.*no courier \\*.json files"):
        create_app()
    (couriers / "test.json").write_text("{}")  # only the folder is checked at start, not the files
    create_app()


@pytest.mark.parametrize("secret", ["   ", "abc", "fifteen-chars!!", " " * 20 + "short"])
def test_a_blank_or_short_secret_key_is_refused_with_how_to_make_one(monkeypatch, tmp_path, secret):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SECRET_KEY", secret)
    with pytest.raises(ConfigurationError, match="DASHBOARD_SECRET_KEY") as refused:
        create_app()
    assert "secrets.token_urlsafe(32)" in str(refused.value)


def test_a_secret_key_of_digits_stays_text(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SECRET_KEY", "12345678901234567890")
    assert create_app().config["SECRET_KEY"] == "12345678901234567890"


@pytest.mark.parametrize("url", ["foo://x", "not a url", "mysql://u@h/db", "sqlite:///", "sqlite://"])
def test_a_bad_database_url_names_the_accepted_forms(monkeypatch, url):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match="DASHBOARD_DATABASE_URL") as refused:
        create_app()
    assert "sqlite:///" in str(refused.value) and "postgresql://" in str(refused.value)


def test_a_refused_database_url_does_not_show_its_password(monkeypatch):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "mysql://reporter:hunter2@db.internal/desk")
    with pytest.raises(ConfigurationError, match="mysql://") as refused:
        create_app()
    assert "hunter2" not in str(refused.value)


def test_a_misspelt_variable_is_named_with_the_known_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SECRETKEY", "a-misspelt-but-long-secret")
    with pytest.raises(ConfigurationError, match="unknown setting DASHBOARD_SECRETKEY") as refused:
        create_app()
    assert "did you mean DASHBOARD_SECRET_KEY" in str(refused.value)
    assert "DASHBOARD_SEARCH_GROUP_LIMIT" in str(refused.value) and "DASHBOARD_TRACKING_DATA" in str(refused.value)


def test_variables_the_scripts_and_tests_use_are_not_unknown(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_VENV", str(tmp_path / "venv"))  # scripts/bootstrap.sh
    monkeypatch.setenv("DASHBOARD_TEST_POSTGRES_URL", "postgresql://u@h/test")  # tests/conftest.py
    app = create_app()
    assert "VENV" not in app.config and "TEST_POSTGRES_URL" not in app.config


def test_spaces_around_the_database_url_are_not_part_of_the_file_name(tmp_path):
    app = create_app({"DATABASE_URL": f" sqlite:///{tmp_path / 'x.sqlite3'} ", "SECRET_KEY": "x"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'x.sqlite3'}"


def test_postgres_urls_use_psycopg(tmp_path):
    app = create_app({"DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "x"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("name,value,message", [
    ("DASHBOARD_SEARCH_GROUP_LIMIT", "0", "DASHBOARD_SEARCH_GROUP_LIMIT must be a whole number from 1 to 200"),
    ("DASHBOARD_TRACKING_DATA", "/nonexistent/couriers", "DASHBOARD_TRACKING_DATA=/nonexistent/couriers"),
    ("DASHBOARD_SECRET_KEY", "abc", "DASHBOARD_SECRET_KEY is too short"),
    ("DASHBOARD_DATABASE_URL", "foo://x", "DASHBOARD_DATABASE_URL uses foo://"),
    ("DASHBOARD_DATABASE_URL", "mysql://u@h/db", "DASHBOARD_DATABASE_URL uses mysql://"),
    ("DASHBOARD_SECRETKEY", "a-misspelt-but-long-secret", "unknown setting DASHBOARD_SECRETKEY"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "bogus", "DASHBOARD_SESSION_COOKIE_SAMESITE must be Strict, Lax or None"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "abc", "DASHBOARD_WTF_CSRF_TIME_LIMIT must be a whole number"),
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "xx", "DASHBOARD_BABEL_DEFAULT_LOCALE must be a language"),
    ("DASHBOARD_DATABASE_URL", "postgres://u:hunter2@h/db", "write postgresql:// instead"),
])
def test_a_bad_setting_stops_the_command_line_with_a_message_not_a_traceback(tmp_path, name, value, message):
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "DASHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", name: value}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("Reference Desk cannot start: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_bad_setting_stops_gunicorn_too_not_only_its_workers(tmp_path):
    # gunicorn restarted a worker that exited with 2, forever; on its app-load status its master stops.
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "DASHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                   "DASHBOARD_SEARCH_GROUP_LIMIT": "0"}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run([str(gunicorn), "--workers", "2", "--bind", "127.0.0.1:0", "wsgi:app"], cwd=root,
                            env=environment, capture_output=True, text=True, timeout=60)
    # The master stops (with 4, or 1 when the second worker's exit races its halt) and says why.
    assert result.returncode != 0 and "App failed to load." in result.stderr
    assert "Reference Desk cannot start: DASHBOARD_SEARCH_GROUP_LIMIT must be" in result.stderr


# Every setting's refusals: (variable, value, what the one-line message says).
CSRF_RANGE = "DASHBOARD_WTF_CSRF_TIME_LIMIT must be a whole number from 60 to 2592000 " \
             "(seconds a form's token stays valid), or none for no limit, got "
SWITCH_SPELLINGS = "must be true or false (true/yes/on/1 or false/no/off/0), got "
REFUSED = [
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "bogus", "DASHBOARD_SESSION_COOKIE_SAMESITE must be Strict, Lax or None, "
                                                    "got 'bogus'"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "", "DASHBOARD_SESSION_COOKIE_SAMESITE must be Strict, Lax or None, got ''"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "none", "DASHBOARD_SESSION_COOKIE_SAMESITE=None needs "
                                                   "DASHBOARD_SESSION_COOKIE_SECURE=true: browsers drop"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "abc", CSRF_RANGE + "'abc'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "0", CSRF_RANGE + "'0'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "59", CSRF_RANGE + "'59'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "2592001", CSRF_RANGE + "'2592001'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "3600.5", CSRF_RANGE + "'3600.5'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "1h", CSRF_RANGE + "'1h'"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "", CSRF_RANGE + "''"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "no limit", CSRF_RANGE + "'no limit'"),
    ("DASHBOARD_SESSION_COOKIE_HTTPONLY", "false", "DASHBOARD_SESSION_COOKIE_HTTPONLY must stay true, got 'false': "
                                                   "without HttpOnly, page scripts could read the login cookie"),
    ("DASHBOARD_SESSION_COOKIE_HTTPONLY", "Off", "DASHBOARD_SESSION_COOKIE_HTTPONLY must stay true, got 'Off'"),
    ("DASHBOARD_SESSION_COOKIE_HTTPONLY", "0", "DASHBOARD_SESSION_COOKIE_HTTPONLY must stay true, got '0'"),
    ("DASHBOARD_SESSION_COOKIE_HTTPONLY", "maybe", "DASHBOARD_SESSION_COOKIE_HTTPONLY " + SWITCH_SPELLINGS + "'maybe'"),
    ("DASHBOARD_SESSION_COOKIE_SECURE", "maybe", "DASHBOARD_SESSION_COOKIE_SECURE " + SWITCH_SPELLINGS + "'maybe'"),
    ("DASHBOARD_SESSION_COOKIE_SECURE", "", "DASHBOARD_SESSION_COOKIE_SECURE " + SWITCH_SPELLINGS + "''"),
    ("DASHBOARD_SESSION_COOKIE_SECURE", "2", "DASHBOARD_SESSION_COOKIE_SECURE " + SWITCH_SPELLINGS + "'2'"),
    ("DASHBOARD_SESSION_COOKIE_SECURE", "y", "DASHBOARD_SESSION_COOKIE_SECURE " + SWITCH_SPELLINGS + "'y'"),
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "xx", "DASHBOARD_BABEL_DEFAULT_LOCALE must be a language Reference Desk has "
                                             "translations for (en), got 'xx'"),
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "de", "translations for (en), got 'de'"),  # a real locale, but not shipped
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "", "translations for (en), got ''"),
    ("DASHBOARD_DATABASE_URL", "postgres://u:hunter2@h/db", "DASHBOARD_DATABASE_URL uses postgres://, which SQLAlchemy "
                                                            "does not read: write postgresql:// instead"),
    ("DASHBOARD_DATABASE_URL", "postgres+psycopg://u@h/db", "DASHBOARD_DATABASE_URL uses postgres+psycopg://, which "
                                                            "SQLAlchemy does not read: write postgresql:// instead"),
    ("DASHBOARD_DATABASE_URL", "mysql://u@h/db", "DASHBOARD_DATABASE_URL uses mysql://"),
    ("DASHBOARD_DATABASE_URL", "SQLITE:///x.sqlite3", "DATABASE_URL uses SQLITE://: write the scheme in lower case"),
    ("DASHBOARD_DATABASE_URL", "POSTGRESQL://u@h/db", "uses POSTGRESQL://: write the scheme in lower case"),
    ("DASHBOARD_DATABASE_URL", "sqlite:///:memory:", "DASHBOARD_DATABASE_URL names no SQLite file"),
    ("DASHBOARD_DATABASE_SCHEMA", "Tests", "DASHBOARD_DATABASE_SCHEMA must be a PostgreSQL schema name in lower case "
                                           "(a-z, 0-9 and _, not starting with a digit, at most 63 characters), "
                                           "got 'Tests'"),
    ("DASHBOARD_DATABASE_SCHEMA", "1abc", "DASHBOARD_DATABASE_SCHEMA must be a PostgreSQL schema name"),
    ("DASHBOARD_DATABASE_SCHEMA", "a,public", "DASHBOARD_DATABASE_SCHEMA must be a PostgreSQL schema name"),
    ("DASHBOARD_DATABASE_SCHEMA", "t" * 64, "DASHBOARD_DATABASE_SCHEMA must be a PostgreSQL schema name"),
    ("DASHBOARD_DATABASE_SCHEMA", "", "DASHBOARD_DATABASE_SCHEMA must be a PostgreSQL schema name"),
    ("DASHBOARD_DATABASE_SCHEMA", "t_tests", "DASHBOARD_DATABASE_SCHEMA is for a PostgreSQL database; "
                                             "DASHBOARD_DATABASE_URL is SQLite"),
    ("DASHBOARD_PERMANENT_SESSION_LIFETIME", "59", "DASHBOARD_PERMANENT_SESSION_LIFETIME must be a whole number from "
                                                   "60 to 2592000 (seconds), got '59'"),
    ("DASHBOARD_SEARCH_GROUP_LIMIT", "--5", "DASHBOARD_SEARCH_GROUP_LIMIT must be a whole number from 1 to 200"),
    ("DASHBOARD_SEARCH_GROUP_LIMIT", "none", "DASHBOARD_SEARCH_GROUP_LIMIT must be a whole number from 1 to 200 "
                                             "(rows per group; a search ranks 200 candidates), got 'none'"),
    ("DASHBOARD_TRUSTED_PROXIES", "1_0", "DASHBOARD_TRUSTED_PROXIES must be a whole number from 0 to 10"),
    ("DASHBOARD_SECRET_KEY", "short", "DASHBOARD_SECRET_KEY is too short"),
    ("DASHBOARD_TRACKING_DATA", "/nonexistent/couriers", "DASHBOARD_TRACKING_DATA=/nonexistent/couriers: no such folder"),
]


@pytest.mark.parametrize("name,value,message", REFUSED)
def test_each_bad_value_is_refused_with_what_is_allowed(monkeypatch, tmp_path, name, value, message):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        create_app()
    assert message in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_every_known_setting_has_its_refusals_tested():
    assert {f"DASHBOARD_{name}" for name in known_settings()} == {name for name, _, _ in REFUSED}


@pytest.mark.parametrize("name,value,expected", [
    *[("DASHBOARD_SESSION_COOKIE_SECURE", spelling, True) for spelling in ("true", "TRUE", "Yes", "on", "1", " true ")],
    *[("DASHBOARD_SESSION_COOKIE_SECURE", spelling, False) for spelling in ("false", "False", "NO", "off", "0")],
    *[("DASHBOARD_SESSION_COOKIE_HTTPONLY", spelling, True) for spelling in ("true", "yes", "ON", "1")],
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "strict", "Strict"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "STRICT", "Strict"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", "lax", "Lax"),
    ("DASHBOARD_SESSION_COOKIE_SAMESITE", " Lax ", "Lax"),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "3600", 3600),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "60", 60),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "2592000", 2592000),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "none", None),
    ("DASHBOARD_WTF_CSRF_TIME_LIMIT", "None", None),
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "en", "en"),
    ("DASHBOARD_BABEL_DEFAULT_LOCALE", "EN", "en"),
    ("DASHBOARD_PERMANENT_SESSION_LIFETIME", "3600", 3600),
    ("DASHBOARD_TRUSTED_PROXIES", "0", 0),
    ("DASHBOARD_SEARCH_GROUP_LIMIT", " 7 ", 7),
])
def test_each_accepted_spelling_gives_the_value_flask_uses(monkeypatch, tmp_path, name, value, expected):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv(name, value)
    config_value = create_app().config[name.removeprefix("DASHBOARD_")]
    assert config_value == expected and type(config_value) is type(expected)


def test_the_defaults_are_kept_without_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    config = create_app().config
    assert (config["SESSION_COOKIE_SECURE"], config["SESSION_COOKIE_HTTPONLY"]) == (False, True)
    assert (config["SESSION_COOKIE_SAMESITE"], config["WTF_CSRF_TIME_LIMIT"], config["BABEL_DEFAULT_LOCALE"]) == (
        "Lax", None, "en")


def test_samesite_none_is_accepted_with_secure_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SESSION_COOKIE_SAMESITE", "none")
    monkeypatch.setenv("DASHBOARD_SESSION_COOKIE_SECURE", "yes")
    config = create_app().config
    assert (config["SESSION_COOKIE_SAMESITE"], config["SESSION_COOKIE_SECURE"]) == ("None", True)


def test_the_session_cookie_carries_the_normalised_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("DASHBOARD_SESSION_COOKIE_SAMESITE", "strict")
    monkeypatch.setenv("DASHBOARD_SESSION_COOKIE_SECURE", "on")
    response = create_app().test_client().get("/login")  # the CSRF token starts the session
    assert response.status_code == 200
    session_cookie = next(cookie for cookie in response.headers.getlist("Set-Cookie") if cookie.startswith("session="))
    assert "SameSite=Strict" in session_cookie and "Secure" in session_cookie and "HttpOnly" in session_cookie


def test_typed_overrides_pass_the_same_rules(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "SECRET_KEY": "x",
                      "SESSION_COOKIE_SECURE": True, "WTF_CSRF_TIME_LIMIT": 600, "SESSION_COOKIE_SAMESITE": "strict"})
    assert (app.config["SESSION_COOKIE_SECURE"], app.config["WTF_CSRF_TIME_LIMIT"]) == (True, 600)
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"
    with pytest.raises(ConfigurationError, match="DASHBOARD_WTF_CSRF_TIME_LIMIT must be a whole number"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "WTF_CSRF_TIME_LIMIT": True})


def test_a_postgresql_schema_name_is_kept(monkeypatch):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("DASHBOARD_DATABASE_SCHEMA", "t_0123abcd")
    app = create_app({"SECRET_KEY": "x"})
    assert app.config["DATABASE_SCHEMA"] == "t_0123abcd"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_a_postgresql_url_with_a_driver_is_kept(monkeypatch):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert create_app({"SECRET_KEY": "x"}).config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_a_shipped_translation_is_an_allowed_default_locale_and_is_used(monkeypatch, tmp_path):
    translations = tmp_path / "translations"
    (translations / "de" / "LC_MESSAGES").mkdir(parents=True)
    (translations / "fr" / "LC_MESSAGES").mkdir(parents=True)  # no compiled catalogue: not shipped
    catalog = Catalog(locale="de")
    catalog.add("ERP number", "ERP-Nummer")
    with open(translations / "de" / "LC_MESSAGES" / "messages.mo", "wb") as compiled:
        write_mo(compiled, catalog)
    monkeypatch.setattr(config, "TRANSLATIONS", translations)
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert config.shipped_locales() == ["en", "de"]

    monkeypatch.setenv("DASHBOARD_BABEL_DEFAULT_LOCALE", "fr")
    with pytest.raises(ConfigurationError, match=re.escape("has translations for (en, de), got 'fr'")):
        create_app()
    monkeypatch.setenv("DASHBOARD_BABEL_DEFAULT_LOCALE", "DE")
    app = create_app()
    assert app.config["BABEL_DEFAULT_LOCALE"] == "de"
    with app.test_request_context():  # Flask-Babel reads the very folder that was checked
        assert gettext("ERP number") == "ERP-Nummer"


def test_the_instance_folder_is_created_readable_by_its_owner_only(monkeypatch, tmp_path):
    # It holds the development secret, the default SQLite database and the demo passwords.
    monkeypatch.delenv("DASHBOARD_SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    config.load_config(instance)
    assert (instance / "secret_key").exists()
    assert instance.stat().st_mode & 0o777 == 0o700
