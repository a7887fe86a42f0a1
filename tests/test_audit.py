"""The audit log: hash chain, verification (library and CLI), the database guard, concurrency, times,
and the authentication events. On SQLite and PostgreSQL unless a rule is PostgreSQL's own.

Tampering goes around the append-only guard the way someone with database access would: on SQLite
by dropping its triggers, on PostgreSQL with `session_replication_role = replica` (superuser).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dashboard import audit, auth
from dashboard.audit import Actor, EventData, verify_chain
from dashboard.models import AuditEvent, db
from dashboard.schema import SQLITE_AUDIT_GUARD

from .conftest import PASSWORD, login

AGENT = Actor("user", "agent", "agent")
# Summer time in Berlin: the stored instant is 01:30:15.123456 UTC whatever zone wrote or reads it.
KNOWN_MOMENT = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


def change(number: int, **fields) -> EventData:
    fields.setdefault("actor", AGENT)
    return EventData(
        action="reference.changed", record_type="cart", record_key="quote-900", kind="custom",
        old_value=f"PO-{number}", new_value=f"PO-{number + 1}", request_id=f"req-{number}",
        client_address="192.0.2.10", **fields,
    )


def append_changes(count: int) -> list[dict]:
    """`count` events, one transaction each, as the product writes them."""
    rows = []
    for number in range(count):
        rows.append(audit.append_event(db.session, change(number)))
        db.session.commit()
    return rows


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def last_event() -> AuditEvent:
    db.session.expire_all()
    return db.session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))


@contextmanager
def guard_lifted() -> Iterator[Connection]:
    """A connection that may UPDATE and DELETE audit events, as an attacker with database access."""
    db.session.commit()
    engine = db.engine
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            with engine.begin() as connection:
                for statement in SQLITE_AUDIT_GUARD:
                    connection.exec_driver_sql(statement)
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield connection
    db.session.expire_all()


def tamper(sql: str) -> None:
    with guard_lifted() as connection:
        connection.exec_driver_sql(sql)


# --- the chain -----------------------------------------------------------------------------------


def test_appended_events_form_one_intact_chain(both_app: Flask):
    with both_app.app_context():
        append_changes(3)
        audit.append_events(db.session, [change(10), change(11), change(12)])  # one transaction, three events
        db.session.commit()

        result = verify_chain(db.session)
        assert result.ok, result.problem
        assert result.checked == 6
        events = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
        assert events[0].prev_hash == audit.GENESIS_HASH
        for before, after in zip(events, events[1:]):
            assert after.prev_hash == before.hash


@pytest.mark.parametrize("value", [None, "", "plain", "quote\" back\\slash", "tab\t nl\n cr\r \x00 \x1f \x7f",
                                   "Grüße ÄR-12 ＰＯ１ 😀 \u2028 \ud800", 0, 2**63, -5, True, 1.5])
def test_canonical_text_is_the_json_array_of_the_fields(value):
    # The hash covers json.dumps(fields, ensure_ascii=True, separators=(",", ":")); audit.py writes it out faster.
    row = {name: value for name in audit.HASHED_FIELDS}
    row["occurred_at"] = KNOWN_MOMENT
    fields = [value] * len(audit.HASHED_FIELDS)
    fields[audit.HASHED_FIELDS.index("occurred_at")] = "2026-03-29T01:30:15.123456Z"
    assert audit.canonical_text(row) == json.dumps(fields, ensure_ascii=True, separators=(",", ":"))


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_compact_json_is_json_dumps(ensure_ascii: bool):
    value = {"status": "delivered", "references": [["custom", "Bestellung Nr. Ä-12"], ["other", 'q"\\ \t']],
             "n": [0, -5, 2**63, 1.5, True, None], "empty": {}, "ＰＯ": "😀 \u2028 \ud800"}
    expected = json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"))
    assert audit.compact_json(ensure_ascii=ensure_ascii)(value) == expected


@pytest.mark.parametrize("record_key, detail", [
    ("DE--1042", '{"status":"new","references":[]}'),
    ('quote"s \\ and\ttab', ""),
    ("Grüße ÄR-12 ＰＯ１ 😀", '{"references":[["custom","Ä \\"]]}'),
])
def test_an_event_template_prepares_what_prepare_does(record_key: str, detail: str):
    actor = Actor("system", "demo-generator", None)
    template = audit.EventTemplate("record.imported", actor, KNOWN_MOMENT)
    expected = audit.prepare(EventData(action="record.imported", actor=actor, record_type="cart",
                                       record_key=record_key, detail=detail, occurred_at=KNOWN_MOMENT))
    assert template.prepare("cart", record_key, detail) == expected


def test_a_bulk_append_stores_every_value_as_given(both_app: Flask):
    # Big appends take the bulk path (COPY on PostgreSQL): values that need escaping come back unchanged.
    awkward = ["tab\there", "line\nbreak", "back\\slash", "quote\"s and 'single'", "Grüße ÄR-12 ＰＯ１", "\\N", ""]
    events = [
        EventData(action="record.imported", actor=AGENT, record_type="order", record_key=f"DE--{number}",
                  new_value=awkward[number % len(awkward)], detail=None if number % 3 else '{"a":"\\u00e4"}',
                  occurred_at=KNOWN_MOMENT)
        for number in range(audit.COPY_FROM_ROWS + 5)
    ]
    with both_app.app_context():
        audit.append_events(db.session, events)
        db.session.commit()
        db.session.expire_all()
        stored = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))

        assert [(row.record_key, row.new_value, row.detail, row.occurred_at) for row in stored] == [
            (event.record_key, event.new_value, event.detail, KNOWN_MOMENT) for event in events]
        result = verify_chain(db.session)
        assert result.ok, result.problem
        assert result.checked == len(events)


@pytest.mark.parametrize("column", ["new_value", "actor_name", "actor_role", "action", "occurred_at"])
def test_verify_names_an_event_altered_with_sql(both_app: Flask, column: str):
    with both_app.app_context():
        append_changes(5)
        assert verify_chain(db.session).ok
        if column == "occurred_at":
            value = ("datetime(occurred_at, '+1 second')" if db.engine.dialect.name == "sqlite"
                     else "occurred_at + interval '1 second'")
        else:
            value = "'forged'"
        tamper(f"UPDATE audit_events SET {column} = {value} WHERE seq = 3")

        result = verify_chain(db.session)
        assert not result.ok
        assert result.seq == 3
        assert "event 3" in result.problem


@pytest.mark.parametrize(("deleted", "named"), [(1, 1), (3, 3), (5, 5)], ids=["first", "middle", "last"])
def test_verify_names_an_event_deleted_with_sql(both_app: Flask, deleted: int, named: int):
    with both_app.app_context():
        append_changes(5)
        tamper(f"DELETE FROM audit_events WHERE seq = {deleted}")

        result = verify_chain(db.session)
        assert not result.ok
        assert result.seq == named
        assert "missing" in result.problem


def test_verify_detects_reordered_events(both_app: Flask):
    with both_app.app_context():
        append_changes(5)
        with guard_lifted() as connection:  # swap events 2 and 3 (seq is unique, so through -1)
            connection.exec_driver_sql("UPDATE audit_events SET seq = -1 WHERE seq = 2")
            connection.exec_driver_sql("UPDATE audit_events SET seq = 2 WHERE seq = 3")
            connection.exec_driver_sql("UPDATE audit_events SET seq = 3 WHERE seq = -1")

        result = verify_chain(db.session)
        assert not result.ok
        assert result.seq == 2


def test_verify_detects_an_event_slipped_in_after_the_head(both_app: Flask):
    """Inserting is allowed (append-only), but not around append_events: a row past the head is forged."""
    with both_app.app_context():
        rows = append_changes(3)
        forged = {**rows[-1], "seq": 4, "new_value": "PO-FORGED", "prev_hash": rows[-1]["hash"]}
        forged["hash"] = audit.event_hash(forged)
        db.session.execute(insert(AuditEvent), [forged])
        db.session.commit()

        result = verify_chain(db.session)
        assert not result.ok
        assert result.seq == 4


@pytest.mark.parametrize("moment", ["before the walk", "after the walk"])
def test_verify_stays_correct_while_events_are_appended(both_app: Flask, monkeypatch, moment: str):
    """`audit verify` runs on a live system: an append that commits mid-verification is no tampering."""
    with both_app.app_context():
        append_changes(3)
        walk = audit._rows

        def append_elsewhere() -> None:
            with Session(db.engine) as other:
                audit.append_event(other, change(99))
                other.commit()

        def walk_with_concurrent_append(session):
            if moment == "before the walk":
                append_elsewhere()
            yield from walk(session)
            if moment == "after the walk":
                append_elsewhere()

        monkeypatch.setattr(audit, "_rows", walk_with_concurrent_append)
        result = verify_chain(db.session)
        assert result.ok, result.problem
        monkeypatch.undo()
        assert verify_chain(db.session).ok
        assert event_count() == 4


# --- the command line ----------------------------------------------------------------------------


def test_cli_verify_exits_zero_on_an_intact_log_and_non_zero_naming_a_tampered_event(both_app: Flask):
    runner = both_app.test_cli_runner()
    with both_app.app_context():
        append_changes(4)

    intact = runner.invoke(args=["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "intact: 4 events" in intact.output

    with both_app.app_context():
        tamper("UPDATE audit_events SET new_value = 'PO-FORGED' WHERE seq = 2")
    altered = runner.invoke(args=["audit", "verify"])
    assert altered.exit_code != 0
    assert "BROKEN at event 2" in altered.output

    with both_app.app_context():
        tamper("DELETE FROM audit_events WHERE seq = 1")
    deleted = runner.invoke(args=["audit", "verify"])
    assert deleted.exit_code != 0
    assert "BROKEN at event 1" in deleted.output


# --- the database guard --------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET new_value = 'PO-FORGED' WHERE seq = 2",
    "DELETE FROM audit_events WHERE seq = 2",
    "DELETE FROM audit_events",
])
def test_the_database_refuses_update_and_delete_on_audit_events(both_app: Flask, statement: str):
    with both_app.app_context():
        append_changes(3)
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
        assert event_count() == 3
        assert verify_chain(db.session).ok


@pytest.mark.postgres
def test_postgres_refuses_truncate_and_the_guard_comes_from_schema_set_up(postgres_app: Flask):
    with postgres_app.app_context():
        append_changes(2)
        triggers = set(db.session.scalars(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
        )))
        assert {"audit_events_append_only", "audit_events_no_truncate"} <= triggers
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE refused"):
            db.session.execute(text("TRUNCATE audit_events"))
        db.session.rollback()
        with pytest.raises(DBAPIError, match="append-only: UPDATE refused"):
            db.session.execute(text("UPDATE audit_events SET reason = 'x'"))
        db.session.rollback()
        with pytest.raises(DBAPIError, match="append-only: DELETE refused"):
            db.session.execute(text("DELETE FROM audit_events"))
        db.session.rollback()
        assert event_count() == 2


# --- concurrency ---------------------------------------------------------------------------------

THREADS = 4
TRANSACTIONS_PER_THREAD = 40


def test_concurrent_appends_never_fork_the_chain(both_app: Flask):
    with both_app.app_context():
        engine = db.engine
        start = threading.Barrier(THREADS)
        failures: list[BaseException] = []

        def writer(number: int) -> None:
            try:
                with Session(engine) as session:
                    start.wait()
                    for transaction in range(TRANSACTIONS_PER_THREAD):
                        batch = 1 + transaction % 3
                        audit.append_events(session, [
                            change(transaction, actor=Actor("user", f"writer-{number}", "agent"))
                            for _ in range(batch)
                        ])
                        time.sleep(0.001)  # hold the head a moment: a racy claim would fork right here
                        session.commit()
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=writer, args=(number,)) for number in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures

        expected = THREADS * sum(1 + transaction % 3 for transaction in range(TRANSACTIONS_PER_THREAD))
        result = verify_chain(db.session)
        assert result.ok, result.problem
        assert result.checked == expected
        seqs = list(db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        assert seqs == list(range(1, expected + 1))
        prev_hashes = list(db.session.scalars(select(AuditEvent.prev_hash)))
        assert len(set(prev_hashes)) == len(prev_hashes)
        writers = set(db.session.scalars(select(AuditEvent.actor_name)))
        assert writers == {f"writer-{number}" for number in range(THREADS)}


# --- times ---------------------------------------------------------------------------------------


def test_times_are_aware_utc_and_come_back_equal(both_app: Flask):
    with both_app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SET TIME ZONE 'Asia/Kolkata'"))  # the writer's zone does not matter either
        audit.append_event(db.session, change(1, occurred_at=KNOWN_MOMENT))
        db.session.commit()
        db.session.remove()

        if db.engine.dialect.name == "postgresql":
            # Whatever zone the reading session is in, the value and the hash stay the same.
            db.session.execute(text("SET TIME ZONE 'America/Los_Angeles'"))
            stored = db.session.scalar(text("SELECT occurred_at AT TIME ZONE 'UTC' FROM audit_events"))
        else:
            stored = db.session.scalar(text("SELECT occurred_at FROM audit_events"))
        assert str(stored) == "2026-03-29 01:30:15.123456"

        event = db.session.scalar(select(AuditEvent))
        assert event.occurred_at == KNOWN_MOMENT
        assert event.occurred_at.tzinfo == timezone.utc
        assert event.occurred_at.isoformat() == "2026-03-29T01:30:15.123456+00:00"
        assert verify_chain(db.session).ok


def test_the_same_events_chain_to_the_same_hashes_on_sqlite_and_postgres(sqlite_app: Flask, postgres_app: Flask):
    """The hash covers a canonical text, so the databases' own formats never enter it."""
    events = [
        change(1, occurred_at=KNOWN_MOMENT),
        EventData(action="reference.added", actor=Actor("api", "erp-sync", None), record_type="order",
                  record_key="DE--1042", kind="custom", new_value="ＰＯ－１２３ é \"quoted\" \\ 😀",
                  reason="Customer's e-mail\tof today", occurred_at=KNOWN_MOMENT + timedelta(microseconds=1)),
    ]
    chains = {}
    for app in (sqlite_app, postgres_app):
        with app.app_context():
            audit.append_events(db.session, events)
            db.session.commit()
            db.session.remove()
            chains[db.engine.dialect.name] = [
                (event.seq, event.occurred_at, event.new_value, event.reason, event.hash)
                for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
            ]
            assert verify_chain(db.session).ok
    assert chains["sqlite"] == chains["postgresql"]


def test_naive_times_are_refused_not_read_as_local_time(both_app: Flask):
    with both_app.app_context():
        with pytest.raises(ValueError, match="naive"):
            audit.append_event(db.session, change(1, occurred_at=datetime(2026, 3, 29, 1, 30)))
        db.session.rollback()
        assert event_count() == 0


# --- authentication events -----------------------------------------------------------------------


def test_a_login_is_an_event(both_app: Flask):
    client = both_app.test_client()
    response = login(client, "supervisor")
    assert response.status_code == 302
    with both_app.app_context():
        event = last_event()
        assert event.action == "auth.login"
        assert (event.actor_type, event.actor_name, event.actor_role) == ("user", "supervisor", "supervisor")
        assert event.request_id == response.headers["X-Request-Id"]
        assert event.client_address == "127.0.0.1"
        assert verify_chain(db.session).ok


@pytest.mark.parametrize("username", ["agent", "nobody"])
def test_a_failed_login_is_an_event_without_the_password(both_app: Flask, username: str):
    client = both_app.test_client()
    response = login(client, username, "not the password")
    assert response.status_code == 401
    with both_app.app_context():
        event = last_event()
        assert event.action == "auth.login_failed"
        assert (event.actor_type, event.actor_name, event.actor_role) == ("anonymous", username, None)
        assert event.request_id == response.headers["X-Request-Id"]
        stored = [getattr(event, name) for name in audit.HASHED_FIELDS if name != "occurred_at"]
        assert not any("not the password" in str(value) for value in stored)
        assert not any(PASSWORD in str(value) for value in stored)


@pytest.mark.parametrize("username", ["agent", "nobody"])
def test_a_failed_login_costs_one_password_check_whether_or_not_the_user_exists(
        app: Flask, username: str, monkeypatch: pytest.MonkeyPatch):
    # The same scrypt work either way: a quick answer for unknown names would tell which names exist.
    checks = []
    real_check = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash", lambda *args: checks.append(args) or real_check(*args))
    monkeypatch.setattr("dashboard.models.check_password_hash", auth.check_password_hash)
    assert login(app.test_client(), username, "not the password").status_code == 401
    assert len(checks) == 1


def test_a_denied_request_is_an_event(both_app: Flask):
    client = both_app.test_client()
    assert login(client, "agent").status_code == 302
    with both_app.app_context():
        before = event_count()
    response = client.get("/audit")
    assert response.status_code == 403
    with both_app.app_context():
        assert event_count() == before + 1
        event = last_event()
        assert event.action == "auth.denied"
        assert (event.actor_type, event.actor_name, event.actor_role) == ("user", "agent", "agent")
        assert event.detail == "GET /audit"
        assert event.reason
        assert event.request_id == response.headers["X-Request-Id"]
        assert verify_chain(db.session).ok


def test_the_chain_head_only_moves_forward(both_app):
    """Rewinding the head would hide events cut off the end of the chain."""
    with both_app.app_context():
        audit.append_event(db.session, EventData(action="test.event", actor=audit.SYSTEM))
        db.session.commit()
        with pytest.raises(DBAPIError, match="only moves forward"):
            db.session.connection().exec_driver_sql("UPDATE audit_head SET seq = 0")
        db.session.rollback()
        with pytest.raises(DBAPIError, match="only moves forward"):
            db.session.connection().exec_driver_sql("DELETE FROM audit_head")
        db.session.rollback()
