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
                                        ("DASHBOARD_SESSION_COOKIE_SECURE", "yes")])
def test_a_bad_setting_stops_the_start_with_its_name(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        create_app()


def test_postgres_urls_use_psycopg(tmp_path):
    app = create_app({"DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "x"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_a_bad_setting_stops_the_command_line_with_a_message_not_a_traceback(tmp_path):
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "DASHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                   "DASHBOARD_SEARCH_GROUP_LIMIT": "0"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DASHBOARD_SEARCH_GROUP_LIMIT must be a whole number from 1 to 200" in result.stderr
    assert "Traceback" not in result.stderr
