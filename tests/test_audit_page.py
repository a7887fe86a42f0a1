"""GET /audit: who may see it, order, keyset paging, every field shown, values shown as text.
On SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from urllib.parse import unquote
from datetime import datetime, timezone

import pytest
from flask import Flask
from sqlalchemy import event, select

from dashboard import audit
from dashboard.audit import Actor, EventData
from dashboard.models import AuditEvent, db
from dashboard.views.audit import PAGE_SIZE, AuditFilters, audit_query, events_page

from .conftest import login


def append(*events: EventData) -> None:
    audit.append_events(db.session, events)
    db.session.commit()


def note(number: int, **fields) -> EventData:
    fields.setdefault("actor", Actor("user", "agent", "agent"))
    fields.setdefault("action", "reference.added")
    fields.setdefault("new_value", f"SO-{number}")
    return EventData(record_type="cart", record_key="quote-900", kind="erp", **fields)


def seqs_on(page: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'<tr data-seq="(\d+)"', page)]


def link(page: str, rel: str) -> str | None:
    """The first pager link with this rel (the pager is shown above and below the table)."""
    match = re.search(rf'<a href="([^"]+)" rel="{rel}"', page)
    return html.unescape(match.group(1)) if match else None


def supervisor_client(app: Flask):
    client = app.test_client()
    assert login(client, "supervisor").status_code == 302
    return client


def text_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "status"), [("supervisor", 200), ("admin", 200), ("agent", 403)])
def test_only_supervisors_and_admins_see_the_audit_log(both_app: Flask, username: str, status: int):
    client = both_app.test_client()
    assert login(client, username).status_code == 302
    response = client.get("/audit")
    assert response.status_code == status
    body = response.get_data(as_text=True)
    if status == 200:
        assert "<h1>Audit log</h1>" in body
    else:
        assert 'data-seq="' not in body
        with both_app.app_context():
            denied = db.session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
            assert (denied.action, denied.actor_name, denied.detail) == ("auth.denied", username, "GET /audit")


def test_logged_out_visitors_are_sent_to_log_in(both_app: Flask):
    client = both_app.test_client()
    response = client.get("/audit?before=10")
    assert response.status_code == 302
    assert unquote(response.headers["Location"]) == "/login?next=/audit?before=10"

    fragment = client.get("/audit", headers={"HX-Request": "true", "HX-Target": "audit-events"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"].startswith("/login?next=")


def test_the_navigation_links_the_log_for_supervisors_only(both_app: Flask):
    supervisor = supervisor_client(both_app)
    assert 'href="/audit"' in text_of(supervisor.get("/search"))
    agent = both_app.test_client()
    login(agent, "agent")
    assert 'href="/audit"' not in text_of(agent.get("/search"))


# --- what is shown -------------------------------------------------------------------------------


def test_events_are_listed_newest_first(both_app: Flask):
    with both_app.app_context():
        append(note(1, new_value="first-value"))
        append(note(2, new_value="second-value"))
        append(note(3, new_value="third-value"))
    page = text_of(supervisor_client(both_app).get("/audit"))
    seqs = seqs_on(page)
    assert seqs == sorted(seqs, reverse=True)
    assert seqs[0] == 4  # the supervisor's own login is the newest
    assert page.index("third-value") < page.index("second-value") < page.index("first-value")
    assert link(page, "next") is None and link(page, "prev") is None


def test_every_field_of_an_event_is_shown_as_text(both_app: Flask):
    moment = datetime(2026, 11, 20, 9, 30, 12, 345678, tzinfo=timezone.utc)
    with both_app.app_context():
        append(EventData(
            action="reference.changed", actor=Actor("user", "maria.supervisor", "supervisor"),
            record_type="order", record_key="DE--1042", kind="erp", old_value="SO-1000123",
            new_value="SO-1000124", reason="Customer called: ERP number was mistyped",
            detail="POST /orders/DE--1042/references", request_id="9f1c2d3e4b5a69788796a5b4c3d2e1f0",
            client_address="203.0.113.7", occurred_at=moment,
        ))
        stored = db.session.scalar(select(AuditEvent).where(AuditEvent.seq == 1))
        short_hash = stored.hash[:12]
    page = text_of(supervisor_client(both_app).get("/audit?before=2"))
    assert seqs_on(page) == [1]
    for shown in (
        "2026-11-20", "09:30:12", 'datetime="2026-11-20T09:30:12.345678+00:00"',
        "maria.supervisor", "user · supervisor",
        "Reference changed", "reference.changed",
        '<a href="/orders/DE--1042">DE--1042</a>', "ERP number",
        "SO-1000123", "SO-1000124", "Customer called: ERP number was mistyped",
        "POST /orders/DE--1042/references", "9f1c2d3e4b5a69788796a5b4c3d2e1f0", "203.0.113.7",
        short_hash,
    ):
        assert shown in page, shown


def test_cart_records_link_to_the_cart_and_others_are_plain_text(both_app: Flask):
    with both_app.app_context():
        append(note(1))
        append(EventData(action="user.created", actor=Actor("system", "cli", None), record_type="user",
                         record_key="new.agent", new_value="agent"))
    page = text_of(supervisor_client(both_app).get("/audit"))
    assert '<a href="/carts/quote-900">quote-900</a>' in page
    assert "new.agent" in page
    assert 'href="/orders/new.agent"' not in page and 'href="/carts/new.agent"' not in page


def test_values_from_people_and_systems_are_escaped(both_app: Flask):
    script = "<script>alert(1)</script>"
    with both_app.app_context():
        append(EventData(
            action="<i>action</i>", actor=Actor("<i>t</i>", "<i>actor</i>", "<i>role</i>"),
            record_type="cart", record_key="<i>key</i>", kind="<i>kind</i>", old_value="<i>old</i>",
            new_value=script, reason="<i>reason</i>", detail="<i>detail</i>", request_id="<i>request</i>",
            client_address="<i>client</i>",
        ))
    page = text_of(supervisor_client(both_app).get("/audit"))
    assert script not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for name in ("action", "t", "actor", "role", "key", "kind", "old", "reason", "detail", "request", "client"):
        assert f"<i>{name}</i>" not in page, name
        assert f"&lt;i&gt;{name}&lt;/i&gt;" in page, name


# --- paging --------------------------------------------------------------------------------------


def test_keyset_paging_walks_every_event_once_both_ways(both_app: Flask):
    with both_app.app_context():
        audit.append_events(db.session, [note(number) for number in range(2 * PAGE_SIZE + 20)])
        db.session.commit()
    client = supervisor_client(both_app)  # its login is event 2 * PAGE_SIZE + 21
    total = 2 * PAGE_SIZE + 21

    pages, url = [], "/audit"
    while url:
        page = text_of(client.get(url))
        pages.append((url, seqs_on(page)))
        url = link(page, "next")
    assert [len(seqs) for _, seqs in pages] == [PAGE_SIZE, PAGE_SIZE, 21]
    assert [seq for _, seqs in pages for seq in seqs] == list(range(total, 0, -1))
    assert pages[1][0] == f"/audit?before={total - PAGE_SIZE + 1}"
    assert f"Events {total} to {total - PAGE_SIZE + 1} of {total}." in text_of(client.get("/audit"))

    last_page = text_of(client.get(pages[-1][0]))
    back = link(last_page, "prev")
    assert back == pages[1][0]
    middle = text_of(client.get(back))
    assert seqs_on(middle) == pages[1][1]
    assert link(middle, "prev") == "/audit"
    assert 'href="/audit"' in middle  # and "Newest"


def test_paging_asks_the_database_for_a_seq_range_never_an_offset(both_app: Flask):
    with both_app.app_context():
        audit.append_events(db.session, [note(number) for number in range(120)])
        db.session.commit()
        engine = db.engine
    client = supervisor_client(both_app)
    statements: list[tuple[str, object]] = []

    def capture(_connection, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        text_of(client.get("/audit?before=70"))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    audit_reads = [(sql, parameters) for sql, parameters in statements if "FROM audit_events" in sql]
    assert audit_reads
    for sql, parameters in audit_reads:
        if "OFFSET" in sql.upper():
            # SQLAlchemy's SQLite dialect always writes "LIMIT ? OFFSET ?"; the offset must skip nothing.
            assert sql.rstrip().endswith("OFFSET ?") and parameters[-1] == 0, (sql, parameters)
        assert "count(" not in sql.lower()  # no scan to count
    assert any("audit_events.seq <" in sql for sql, _ in audit_reads)


@pytest.mark.parametrize("before", ["abc", "-5", "0"])
def test_a_meaningless_before_shows_the_newest_page(both_app: Flask, before: str):
    with both_app.app_context():
        append(note(1))
    page = text_of(supervisor_client(both_app).get(f"/audit?before={before}"))
    assert seqs_on(page) == [2, 1]


def test_before_the_first_event_there_is_nothing_older(both_app: Flask):
    with both_app.app_context():
        append(note(1))
    page = text_of(supervisor_client(both_app).get("/audit?before=1"))
    assert seqs_on(page) == []
    assert "No older events." in page
    assert link(page, "prev") == "/audit"


def test_htmx_paging_answers_only_the_events_region(both_app: Flask):
    with both_app.app_context():
        audit.append_events(db.session, [note(number) for number in range(60)])
        db.session.commit()
    client = supervisor_client(both_app)
    response = client.get("/audit?before=30", headers={"HX-Request": "true", "HX-Target": "audit-events"})
    body = text_of(response)
    assert "<html" not in body and "<h1>" not in body
    assert seqs_on(body) == list(range(29, 0, -1))
    assert 'hx-target="#audit-events"' in body
    assert {"HX-Request", "HX-Target"} <= set(response.vary)

    history_restore = client.get("/audit?before=30", headers={
        "HX-Request": "true", "HX-Target": "audit-events", "HX-History-Restore-Request": "true",
    })
    assert "<html" in text_of(history_restore)


# --- the query, ready for filters ----------------------------------------------------------------


def test_filters_narrow_the_query_and_keyset_pages_follow_them(both_app: Flask):
    early = datetime(2026, 1, 1, tzinfo=timezone.utc)
    late = datetime(2026, 6, 1, tzinfo=timezone.utc)
    with both_app.app_context():
        for number in range(10):
            append(note(number, occurred_at=late if number % 2 else early,
                        actor=Actor("user", "odd" if number % 2 else "even", "agent")))
        append(EventData(action="auth.login", actor=Actor("user", "odd", "agent")))

        def seqs(filters: AuditFilters) -> list[int]:
            return list(db.session.scalars(audit_query(filters).with_only_columns(AuditEvent.seq)
                                           .order_by(AuditEvent.seq)))

        assert seqs(AuditFilters()) == list(range(1, 12))
        assert seqs(AuditFilters(actor="odd")) == [2, 4, 6, 8, 10, 11]
        assert seqs(AuditFilters(actor="odd", action="reference.added")) == [2, 4, 6, 8, 10]
        assert seqs(AuditFilters(value="SO-3")) == [4]
        assert seqs(AuditFilters(since=late)) == [2, 4, 6, 8, 10, 11]
        assert seqs(AuditFilters(until=late)) == [1, 3, 5, 7, 9]
        assert seqs(AuditFilters(record_type="cart", record_key="quote-900", kind="erp")) == list(range(1, 11))

        first = events_page(db.session, AuditFilters(actor="even"), size=2)
        assert [e.seq for e in first.events] == [9, 7] and first.older == 7 and first.newer is None
        second = events_page(db.session, AuditFilters(actor="even"), before=first.older, size=2)
        assert [e.seq for e in second.events] == [5, 3] and second.older == 3 and second.newer == {}
        third = events_page(db.session, AuditFilters(actor="even"), before=second.older, size=2)
        assert [e.seq for e in third.events] == [1] and third.older is None
        assert third.newer == {"before": 6}  # the page of 5 and 3, whatever lies between


def test_a_login_with_a_nul_character_is_refused_clearly(both_app):
    from .conftest import csrf_token_from

    client = both_app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "agent\x00", "password": "x", "csrf_token": token})
    assert response.status_code == 422
    assert "Control characters are not allowed" in response.get_data(as_text=True)


def test_a_row_written_around_the_app_is_marked_outside_the_chain(both_app: Flask):
    # The app's role may INSERT events; one that did not move the chain head is flagged on the page.
    with both_app.app_context():
        append(note(1), note(2))
        real = audit.append_event(db.session, EventData(action="test.event", actor=audit.SYSTEM))
        db.session.commit()
        forged = {**real, "seq": 999_999, "actor_name": "evil", "prev_hash": real["hash"]}
        forged["hash"] = audit.event_hash(forged)
        db.session.add(AuditEvent(**forged))
        db.session.commit()
    page = text_of(supervisor_client(both_app).get("/audit"))
    assert 'data-testid="outside-chain"' in page and "audit verify" in page
    rows = re.findall(r'<tr data-seq="(\d+)"[^>]*class="([^"]*)"', page)
    flagged = [seq for seq, classes in rows if "outside-chain" in classes]
    assert flagged == ["999999"] and str(real["seq"]) in [seq for seq, _ in rows]


def test_a_log_written_only_by_the_app_shows_no_chain_warning(both_app: Flask):
    with both_app.app_context():
        append(note(1), note(2))
    page = text_of(supervisor_client(both_app).get("/audit"))
    assert "outside-chain" not in page


def test_a_row_written_around_the_app_at_the_next_number_does_not_stop_logins(both_app: Flask):
    # The app's role may INSERT: a row at exactly the next number once made every append (every
    # login and edit) fail on the unique seq. The chain goes on after it; verify and the page name it.
    with both_app.app_context():
        append(note(1))
        head = db.session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
        forged = audit.append_event(db.session, EventData(action="test.event", actor=audit.SYSTEM))
        db.session.rollback()  # its values only: written below as someone around the app would
        db.session.add(AuditEvent(**{**forged, "seq": head + 1, "actor_name": "mallory", "hash": "y" * 64}))
        db.session.commit()
    client = supervisor_client(both_app)  # logs in: an append
    page = text_of(client.get("/audit"))
    rows = re.findall(r'<tr data-seq="(\d+)"[^>]*class="([^"]*)"', page)
    assert [seq for seq, classes in rows if "outside-chain" in classes] == [str(head + 1)]
    assert int(rows[0][0]) == head + 2  # the login's event, after the forged row
    with both_app.app_context():
        result = audit.verify_chain(db.session)
        assert not result.ok and result.seq == head + 1


def test_a_row_written_around_the_app_at_the_highest_number_is_left_where_it_is(both_app: Flask):
    # Far ahead of the chain (here the last number a BIGINT holds), a foreign row is no reason to
    # move the chain there: appends go on at the head, and the page marks the row.
    with both_app.app_context():
        append(note(1))
        forged = audit.append_event(db.session, EventData(action="test.event", actor=audit.SYSTEM))
        db.session.rollback()
        db.session.add(AuditEvent(**{**forged, "seq": 2**63 - 1, "actor_name": "mallory"}))
        db.session.commit()
        head = db.session.scalar(select(audit.AuditHead.seq))
    client = supervisor_client(both_app)  # logs in: an append
    page = text_of(client.get("/audit"))
    rows = re.findall(r'<tr data-seq="(\d+)"[^>]*class="([^"]*)"', page)
    assert [seq for seq, classes in rows if "outside-chain" in classes] == [str(2**63 - 1)]
    assert int(rows[1][0]) == head + 1  # the login's event, right after the chain's last
