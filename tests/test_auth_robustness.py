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
