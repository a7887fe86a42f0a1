"""What one search request costs the database, and that the cheaper user check stays safe.

On SQLite and PostgreSQL: a search is one statement (two when the "did you mean" tier runs) after
the user look-up, outside a transaction; every request reads the user's row, so a disabled,
deleted or demoted user loses access on the next request.
"""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import event, select, update
from sqlalchemy.exc import OperationalError

from dashboard import audit
from dashboard.auth import SignedInUser
from dashboard.models import AuditEvent, User, db

from .conftest import login
from .factories import make_cart, make_customer, make_order

REGION = {"HX-Request": "true", "HX-Target": "results"}


@pytest.fixture
def searchable(both_app: Flask) -> Flask:
    with both_app.app_context():
        make_customer()
        cart = make_cart("quote-900", custom="PO-2026-004711")
        make_order("DE--1042", cart=cart, custom="PO-2026-004711", erp="SO-1000123")
        make_order("DE--1043", custom="PO-2026-009999")
        db.session.commit()
    return both_app


class Statements:
    """The SQL statements an app's engine runs, and whether each ran outside a transaction."""

    def __init__(self, app: Flask):
        with app.app_context():
            self.engine = db.engine
        self.seen: list[tuple[str, bool]] = []

    def _record(self, connection, _cursor, statement, *_args) -> None:
        driver = connection.connection.driver_connection
        autocommit = driver.isolation_level is None if self.engine.dialect.name == "sqlite" else driver.autocommit
        self.seen.append((statement, autocommit))

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    @property
    def sql(self) -> list[str]:
        return [statement for statement, _ in self.seen]


def _search(client, query: str) -> str:
    response = client.get("/search", query_string={"q": query}, headers=REGION)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "statements"), [
    ("PO-2026-004711", 2),  # exact, prefix and contains: the user, then one search statement
    ("quote", 2),
    ("po", 2),  # too short for contains: still one statement
    ("PO-2026-00471X", 3),  # nothing stronger matched: the similar tier is a second statement
    ("zzqqxxvv", 3),
])
def test_a_search_request_is_the_user_look_up_and_one_statement_per_pass(searchable, query, statements):
    client = searchable.test_client()
    login(client, "agent")
    _search(client, "warm")  # the trigram counts are read once per process, then kept
    with Statements(searchable) as seen:
        _search(client, query)
    assert len(seen.sql) == statements, "\n\n".join(seen.sql)
    assert "users" in seen.sql[0]
    if searchable.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert all(autocommit for _, autocommit in seen.seen), "a search runs no transaction"


def test_the_search_statement_finds_both_groups(searchable):
    client = searchable.test_client()
    login(client, "agent")
    body = _search(client, "PO 2026 004711")
    assert "DE--1042" in body and "quote-900" in body and "DE--1043" not in body
    body = _search(client, "PO-2026-004712")  # one typo away from one value
    assert "DE--1042" in body and "DE--1043" not in body and "similar" in body


def _set_user(app: Flask, username: str, **values) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.username == username).values(**values))
        db.session.commit()


def test_a_disabled_user_is_logged_out_on_the_next_request(both_app):
    client = both_app.test_client()
    login(client, "agent")
    assert client.get("/search?q=x").status_code == 200
    _set_user(both_app, "agent", active=False)
    response = client.get("/search?q=x")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/search?q=x", headers=REGION).status_code == 401


def test_a_deleted_user_is_logged_out_on_the_next_request(both_app):
    client = both_app.test_client()
    login(client, "agent")
    assert client.get("/search?q=x").status_code == 200
    with both_app.app_context():
        db.session.delete(db.session.scalar(select(User).where(User.username == "agent")))
        db.session.commit()
    assert client.get("/search?q=x").status_code == 302


def test_a_changed_role_applies_on_the_next_request(both_app):
    client = both_app.test_client()
    login(client, "supervisor")
    assert client.get("/audit").status_code == 200
    _set_user(both_app, "supervisor", role="agent")
    assert client.get("/audit").status_code == 403


def test_a_refusal_on_the_search_page_is_written_in_a_transaction_of_its_own(both_app, monkeypatch):
    """The search request runs without a transaction; auth.denied must still chain correctly."""
    client = both_app.test_client()
    login(client, "agent")
    monkeypatch.setattr(SignedInUser, "has_role", lambda self, role: False)
    assert client.get("/search?q=x").status_code == 403
    with both_app.app_context():
        denied = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.denied")).all()
        assert [event.actor_name for event in denied] == ["agent"]
        assert audit.verify_chain(db.session).ok


def test_a_dead_pooled_connection_costs_the_user_look_up_one_retry(app, monkeypatch):
    client = app.test_client()
    login(client, "agent")
    real_execute = db.session.execute
    failures = []

    def execute_once_dead(statement, *args, **kwargs):
        if not failures and "users" in str(statement):
            failures.append(statement)
            raise OperationalError("SELECT users", {}, Exception("server closed the connection"),
                                   connection_invalidated=True)
        return real_execute(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "execute", execute_once_dead)
    assert client.get("/search?q=x").status_code == 200
    assert len(failures) == 1


def test_other_database_errors_in_the_user_look_up_are_not_retried(app, monkeypatch):
    from dashboard.auth import _load_user

    calls = []

    def broken(statement, *args, **kwargs):
        calls.append(statement)
        raise OperationalError("SELECT users", {}, Exception("no such column"), connection_invalidated=False)

    with app.test_request_context():
        monkeypatch.setattr(db.session, "execute", broken)
        with pytest.raises(OperationalError):
            _load_user("1")
    assert len(calls) == 1
