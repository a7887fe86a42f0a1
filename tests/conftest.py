"""Each test gets its own app and database and starts logged out.

`app` is SQLite in a temporary folder. `both_app` runs a test on SQLite and on PostgreSQL
(127.0.0.1:5432, database `test`; each test gets its own schema, dropped afterwards).
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.security import generate_password_hash

from dashboard import create_app
from dashboard.models import Role, User, db
from dashboard.schema import create_schema

POSTGRES_URL = os.environ.get("DASHBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery"
# Hashed once: scrypt is slow on purpose, and every test creates its users afresh.
PASSWORD_HASH = generate_password_hash(PASSWORD)
CARTS_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "spryker" / "multi_cart.csv"


def _make_app(database_url: str, **extra) -> Flask:
    app = create_app({
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        "TESTING": True,
        **extra,
    })
    with app.app_context():
        create_schema(db.engine)
        for role in Role:
            user = User(username=role.value, role=role.value, password_hash=PASSWORD_HASH)
            db.session.add(user)
        db.session.commit()
    return app


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    app = _make_app(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    app.instance_path = str(tmp_path / "instance")  # demo-users.txt never lands in the checkout's instance folder
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def postgres_app(tmp_path: Path) -> Iterator[Flask]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        app = _make_app(POSTGRES_URL, DATABASE_SCHEMA=schema)
        app.instance_path = str(tmp_path / "instance")
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def app(sqlite_app: Flask) -> Flask:
    return sqlite_app


@pytest.fixture(params=["sqlite", "postgres"])
def both_app(request: pytest.FixtureRequest) -> Flask:
    return request.getfixturevalue(f"{request.param}_app")


@pytest.fixture
def client(app: Flask):
    return app.test_client()


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token_from(page.get_data(as_text=True))},
    )


@pytest.fixture
def agent_client(client):
    assert login(client, "agent").status_code == 302
    return client
