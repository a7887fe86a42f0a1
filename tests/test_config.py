import os
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import create_app
from dashboard.config import ConfigurationError


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
                                        ("DASHBOARD_SESSION_COOKIE_SECURE", "yes"),
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
])
def test_a_bad_setting_stops_the_command_line_with_a_message_not_a_traceback(tmp_path, name, value, message):
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "DASHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", name: value}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("Reference Desk cannot start: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
