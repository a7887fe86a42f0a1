"""Logging in when things go wrong: the audit write fails, the database connection died, the name is
typed in another case, the form's CSRF token is missing. And /healthz after a database restart.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dashboard import audit, auth
from dashboard.models import AuditEvent, User, db

from .conftest import PASSWORD_HASH, POSTGRES_URL, _make_app, csrf_token_from, login


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def _logged_in(client) -> bool:
    response = client.get("/search?q=x")
    assert response.status_code in (200, 302)
    return response.status_code == 200


# --- the audit event comes first -----------------------------------------------------------------


def test_a_login_whose_audit_event_fails_does_not_log_in(both_app: Flask, monkeypatch: pytest.MonkeyPatch):
    real_append = audit.append_event

    def failing_append(session, event):
        if event.action == "auth.login":
            raise OperationalError("INSERT INTO audit_events", {}, Exception("permission denied for sequence"))
        return real_append(session, event)

    monkeypatch.setattr(audit, "append_event", failing_append)
    client = both_app.test_client()
    response = login(client, "agent")
    assert response.status_code == 500
    assert not _logged_in(client)
    assert _events(both_app, "auth.login") == []


def test_a_login_whose_commit_fails_does_not_log_in(app: Flask, monkeypatch: pytest.MonkeyPatch):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)

    def failing_commit():
        raise OperationalError("COMMIT", {}, Exception("disk full"))

    with app.app_context():
        monkeypatch.setattr(db.session, "commit", failing_commit)
        response = client.post("/login", data={
            "username": "agent", "password": "correct horse battery", "csrf_token": csrf_token_from(page)})
        monkeypatch.undo()
    assert response.status_code == 500
    assert not _logged_in(client)
    assert _events(app, "auth.login") == []


# --- user names in any case ----------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["AGENT", "Agent", " agent "])
def test_login_finds_the_user_whatever_the_case(both_app: Flask, typed: str):
    client = both_app.test_client()
    assert login(client, typed).status_code == 302
    assert _logged_in(client)
    [event] = _events(both_app, "auth.login")
    assert (event.actor_name, event.actor_role) == ("agent", "agent")  # the stored name, not the typed one


def test_a_name_in_another_case_still_needs_the_password(both_app: Flask):
    client = both_app.test_client()
    assert login(client, "AGENT", "not the password").status_code == 401
    assert not _logged_in(client)


def test_the_exact_name_wins_over_an_older_account_differing_in_case(app: Flask):
    """Accounts made before names were unique case-insensitively may differ only in case."""
    with app.app_context():
        db.session.add(User(username="Agent", role="admin", password_hash=PASSWORD_HASH))
        db.session.commit()
    for typed, role in (("agent", "agent"), ("Agent", "admin")):
        client = app.test_client()
        assert login(client, typed).status_code == 302
        assert _events(app, "auth.login")[-1].actor_role == role


# --- a login form without its CSRF token ---------------------------------------------------------


def test_a_login_post_without_csrf_token_shows_the_login_page_again(app: Flask):
    client = app.test_client()
    response = client.post("/login?next=/carts/quote-open", data={"username": "agent", "password": "correct horse battery"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Your session expired, please log in again." in html
    assert 'value="agent"' in html  # what was typed is kept, the password is not
    assert "correct horse battery" not in html
    assert 'action="/login?next=/carts/quote-open"' in html
    # The page carries a fresh token that works.
    response = client.post("/login?next=/carts/quote-open", data={
        "username": "agent", "password": "correct horse battery", "csrf_token": csrf_token_from(html)})
    assert response.status_code == 302 and response.headers["Location"] == "/carts/quote-open"
    assert _events(app, "auth.login")


def test_a_login_post_with_a_stale_csrf_token_shows_the_login_page_again(app: Flask):
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    with client.session_transaction() as session:
        session.clear()  # the session cookie expired while the page stayed open
    response = client.post("/login", data={"username": "agent", "password": "x", "csrf_token": token})
    assert response.status_code == 400
    assert "Your session expired, please log in again." in response.get_data(as_text=True)
    assert "Location" not in response.headers


# --- /healthz ------------------------------------------------------------------------------------


def test_healthz_answers_503_when_the_database_does_not(app: Flask, monkeypatch: pytest.MonkeyPatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)

    with app.app_context():
        monkeypatch.setattr(db.session, "execute", broken)
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}


# --- a pooled connection that died (PostgreSQL restarted) ----------------------------------------


@pytest.fixture
def pooled_postgres_app() -> Iterator[tuple[Flask, Callable[[], None]]]:
    """PostgreSQL with the production connection pool, in a database of its own (postgres_app gives
    each test a schema, and so uses no pool). Yields the app and a function that ends its connections."""
    name = f"t_pool_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def terminate_connections() -> None:
        sql = "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
        with admin.connect() as connection:
            pids = connection.execute(text(sql), {"name": name}).scalars().all()
            assert pids, "the pool holds no connection to end"
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):  # until the server has ended them
                if not connection.execute(text(sql), {"name": name}).first():
                    break
                time.sleep(0.02)

    try:
        app = _make_app(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
        with app.app_context():
            assert db.engine.pool.__class__.__name__ == "QueuePool"
        yield app, terminate_connections
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_healthz_survives_a_dead_pooled_connection(pooled_postgres_app):
    app, terminate_connections = pooled_postgres_app
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    terminate_connections()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_login_survives_a_dead_pooled_connection(pooled_postgres_app):
    app, terminate_connections = pooled_postgres_app
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    terminate_connections()
    response = client.post("/login", data={"username": "agent", "password": "correct horse battery", "csrf_token": token})
    assert response.status_code == 302
    assert _logged_in(client)
    assert [event.actor_name for event in _events(app, "auth.login")] == ["agent"]


def test_a_logged_in_request_survives_a_dead_pooled_connection(pooled_postgres_app):
    app, terminate_connections = pooled_postgres_app
    client = app.test_client()
    assert login(client, "agent").status_code == 302
    terminate_connections()
    assert client.get("/search?q=x").status_code == 200


def test_only_a_dead_connection_is_retried(app: Flask):
    calls = []

    def other_error():
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("no such table"), connection_invalidated=False)

    with app.app_context(), pytest.raises(OperationalError):
        auth.once_more_on_dead_connection(other_error)
    assert len(calls) == 1

    def dead_twice():
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("server closed"), connection_invalidated=True)

    calls.clear()
    with app.app_context(), pytest.raises(OperationalError):
        auth.once_more_on_dead_connection(dead_twice)
    assert len(calls) == 2


def test_only_requests_that_read_the_session_refresh_its_cookie(app):
    # A static file or health check answered after a logout must not bring the old session back.
    client = app.test_client()
    assert login(client, "agent").status_code == 302
    for path in ("/static/favicon.svg", "/static/js/app.js", "/healthz"):
        response = client.get(path)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers, path
    assert "session=" in client.get("/search").headers.get("Set-Cookie", "")  # the idle timeout restarts
