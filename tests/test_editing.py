"""Editing rules of DESIGN.md, through the pages, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from dashboard import audit
from dashboard.models import AuditEvent, Cart, CartState, Order, Reference, db

from .conftest import csrf_token_from, login
from .factories import add_reference, make_cart, make_customer, make_order

HTMX = {"HX-Request": "true", "HX-Target": "references"}


@pytest.fixture
def records(both_app):
    with both_app.app_context():
        make_customer()
        make_cart("quote-open", custom="PO-1", erp="SO-1")
        make_cart("quote-locked", state=CartState.LOCKED, custom="PO-L")
        ordered = make_cart("quote-ordered", state=CartState.ORDERED, custom="PO-O")
        make_order("DE--1042", cart=ordered, custom="PO-O")
        make_cart("quote-deleted", state=CartState.DELETED)
        db.session.commit()
    return both_app


def _page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    return csrf_token_from(response.get_data(as_text=True))


def _version(app, model, key):
    with app.app_context():
        column = Order.order_reference if model is Order else Cart.key
        return db.session.scalar(select(model.version).where(column == key))


def _events(app, action=None):
    with app.app_context():
        statement = select(AuditEvent).order_by(AuditEvent.seq)
        if action:
            statement = statement.where(AuditEvent.action == action)
        return [(e.action, e.record_key, e.kind, e.old_value, e.new_value, e.actor_name, e.reason)
                for e in db.session.scalars(statement)]


def _refs(app, key, kind="custom"):
    with app.app_context():
        cart_id = db.session.scalar(select(Cart.id).where(Cart.key == key))
        return [(r.value, r.active) for r in db.session.scalars(
            select(Reference).where(Reference.cart_id == cart_id, Reference.kind == kind).order_by(Reference.id))]


def _post_custom(client, app, key, value, *, collection="carts", version=None, headers=None, **extra):
    token = _page(client, f"/{collection}/{key}")
    model = Cart if collection == "carts" else Order
    data = {"csrf_token": token, "value": value,
            "version": str(_version(app, model, key) if version is None else version), **extra}
    if version == "":
        data.pop("version")
    return client.post(f"/{collection}/{key}/custom-reference", data=data, headers=headers or {})


def test_agent_changes_custom_reference_on_open_cart(records):
    client = records.test_client()
    login(client, "agent")
    before = len(_events(records))
    response = _post_custom(client, records, "quote-open", "PO-2", headers=HTMX)
    assert response.status_code == 200
    assert "Saved." in response.get_data(as_text=True)
    assert _refs(records, "quote-open") == [("PO-1", False), ("PO-2", True)]
    events = _events(records)
    assert len(events) == before + 1
    assert events[-1] == ("reference.changed", "quote-open", "custom", "PO-1", "PO-2", "agent", None)
    with records.app_context():
        assert audit.verify_chain(db.session).ok


def test_plain_post_without_javascript_redirects_back(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", "PO-3")
    assert response.status_code == 302 and response.headers["Location"].endswith("/carts/quote-open")
    assert "Saved." in client.get("/carts/quote-open").get_data(as_text=True)


@pytest.mark.parametrize("key", ["quote-locked", "quote-ordered", "quote-deleted"])
def test_agent_is_refused_on_carts_that_are_not_open(records, key):
    client = records.test_client()
    login(client, "agent")
    before = _refs(records, key)
    response = _post_custom(client, records, key, "HACKED", headers=HTMX)
    assert response.status_code == 403
    assert _refs(records, key) == before
    denied = _events(records, "auth.denied")
    assert denied and denied[-1][1] == key and denied[-1][5] == "agent"
    assert not any(e[0].startswith("reference.") and e[4] == "HACKED" for e in _events(records))
    page = client.get(f"/carts/{key}").get_data(as_text=True)
    timeline = page[page.index('id="timeline"'):]
    assert "Refused: " in timeline and "Reason: " not in timeline  # a refusal is not a justification


def test_ordered_cart_answer_links_to_its_order(records):
    client = records.test_client()
    login(client, "supervisor")
    response = _post_custom(client, records, "quote-ordered", "X", headers=HTMX, reason="try")
    assert response.status_code == 403
    assert "/orders/DE--1042" in response.get_data(as_text=True)


def test_agent_is_refused_on_orders(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "DE--1042", "HACKED", collection="orders")
    assert response.status_code == 403
    assert _events(records, "auth.denied")[-1][1] == "DE--1042"


def test_a_reason_of_invisible_characters_only_is_no_reason(records):
    client = records.test_client()
    login(client, "supervisor")
    before = len(_events(records))
    response = _post_custom(client, records, "DE--1042", "PO-NEW", collection="orders", headers=HTMX,
                            reason="\u200b \ufeff")
    assert response.status_code == 422 and "needs a reason" in response.get_data(as_text=True)
    assert len(_events(records)) == before
    response = _post_custom(client, records, "DE--1042", "PO-NEW", collection="orders", headers=HTMX,
                            reason="\ufeffcustomer sent a corrected PO\u200b")
    assert response.status_code == 200
    assert _events(records)[-1][6] == "customer sent a corrected PO"


def test_supervisor_needs_a_reason_on_orders(records):
    client = records.test_client()
    login(client, "supervisor")
    response = _post_custom(client, records, "DE--1042", "PO-NEW", collection="orders", headers=HTMX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "needs a reason" in page and 'value="PO-NEW"' in page
    response = _post_custom(client, records, "DE--1042", "PO-NEW", collection="orders", headers=HTMX,
                            reason="customer sent a corrected PO")
    assert response.status_code == 200
    assert _events(records)[-1][:5] == ("reference.changed", "DE--1042", "custom", "PO-O", "PO-NEW")
    assert _events(records)[-1][6] == "customer sent a corrected PO"


def test_supervisor_may_edit_a_locked_cart_with_a_reason(records):
    client = records.test_client()
    login(client, "supervisor")
    response = _post_custom(client, records, "quote-locked", "PO-L2", reason="approved by buyer")
    assert response.status_code == 302
    assert _refs(records, "quote-locked")[-1] == ("PO-L2", True)


@pytest.mark.parametrize("value,status", [("é" * 255, 200), ("é" * 256, 422)])
def test_length_is_counted_in_characters(records, value, status):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", value, headers=HTMX)
    assert response.status_code == status
    if status == 422:
        assert "At most 255 characters" in response.get_data(as_text=True)
        assert _refs(records, "quote-open") == [("PO-1", True)]
    else:
        assert _refs(records, "quote-open")[-1] == (value, True)


@pytest.mark.parametrize("value", ["PO\n2", "PO\x002", "PO\x1b2", "PO\u20282"])
def test_control_characters_are_refused_and_nothing_written(records, value):
    client = records.test_client()
    login(client, "agent")
    before = _events(records)
    response = _post_custom(client, records, "quote-open", value, headers=HTMX)
    assert response.status_code == 422
    assert "control characters" in response.get_data(as_text=True)
    assert _events(records) == before


def test_stale_version_answers_409_with_both_values(records):
    client = records.test_client()
    login(client, "agent")
    stale = _version(records, Cart, "quote-open")
    assert _post_custom(client, records, "quote-open", "PO-FIRST", version=stale).status_code == 302
    response = _post_custom(client, records, "quote-open", "PO-SECOND", version=stale, headers=HTMX)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "PO-FIRST" in page and "PO-SECOND" in page
    assert _refs(records, "quote-open")[-1] == ("PO-FIRST", True)


def test_missing_version_answers_409(records):
    client = records.test_client()
    login(client, "agent")
    before = _events(records)
    response = _post_custom(client, records, "quote-open", "PO-X", version="", headers=HTMX)
    assert response.status_code == 409
    assert _events(records) == before


def test_double_submit_saves_once(records):
    client = records.test_client()
    login(client, "agent")
    version = _version(records, Cart, "quote-open")
    first = _post_custom(client, records, "quote-open", "PO-TWICE", version=version, headers=HTMX)
    second = _post_custom(client, records, "quote-open", "PO-TWICE", version=version, headers=HTMX)
    assert (first.status_code, second.status_code) == (200, 200)
    assert [r for r in _refs(records, "quote-open") if r[0] == "PO-TWICE"] == [("PO-TWICE", True)]
    assert len([e for e in _events(records) if e[4] == "PO-TWICE"]) == 1


def test_clearing_the_custom_reference_retires_it(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", "   ", headers=HTMX)
    assert response.status_code == 200
    assert _refs(records, "quote-open") == [("PO-1", False)]
    assert _events(records)[-1][:5] == ("reference.retired", "quote-open", "custom", "PO-1", None)


def test_add_change_and_retire_other_kinds(records):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    version = lambda: str(_version(records, Cart, "quote-open"))  # noqa: E731
    response = client.post("/carts/quote-open/references", headers=HTMX,
                           data={"csrf_token": token, "kind": "tracking", "value": "not-a-tracking-no", "version": version()})
    assert response.status_code == 200
    assert "No carrier recognises" in response.get_data(as_text=True)
    with records.app_context():
        erp = db.session.scalar(select(Reference).where(Reference.value == "SO-1"))
        erp_id = erp.id
    response = client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                           data={"csrf_token": token, "value": "SO-2", "version": version()})
    assert response.status_code == 200
    assert _refs(records, "quote-open", "erp") == [("SO-1", False), ("SO-2", True)]
    with records.app_context():
        new_id = db.session.scalar(select(Reference.id).where(Reference.value == "SO-2"))
    response = client.post(f"/carts/quote-open/references/{new_id}/retire", headers=HTMX,
                           data={"csrf_token": token, "version": version()})
    assert response.status_code == 200
    assert _refs(records, "quote-open", "erp") == [("SO-1", False), ("SO-2", False)]
    actions = [e[0] for e in _events(records)][-3:]
    assert actions == ["reference.added", "reference.changed", "reference.retired"]


def test_the_same_reference_written_another_way_is_refused_on_the_same_record(records):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    add = lambda value: client.post("/carts/quote-open/references", headers=HTMX, data={  # noqa: E731
        "csrf_token": token, "kind": "tracking", "value": value, "version": str(_version(records, Cart, "quote-open"))})
    assert add("1Z5R89390357567127").status_code == 200
    response = add("1z5r 8939 0357 5671 27")
    assert response.status_code == 422
    assert "already has “1Z5R89390357567127”" in response.get_data(as_text=True)
    assert 'value="1z5r 8939 0357 5671 27"' in response.get_data(as_text=True)  # the typing is kept
    assert _refs(records, "quote-open", "tracking") == [("1Z5R89390357567127", True)]
    with records.app_context():
        erp_id = db.session.scalar(select(Reference.id).where(Reference.value == "SO-1"))
    response = client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX, data={
        "csrf_token": token, "value": "so 1", "version": str(_version(records, Cart, "quote-open"))})
    assert response.status_code == 200  # a reference may be re-spelled itself
    assert _refs(records, "quote-open", "erp") == [("SO-1", False), ("so 1", True)]


def test_duplicate_value_saves_with_a_warning_naming_the_other_record(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", "PO-L", headers=HTMX)
    assert response.status_code == 200
    assert "quote-locked" in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(records):
    client = records.test_client()
    login(client, "agent")
    client.get("/carts/quote-open")
    response = client.post("/carts/quote-open/custom-reference", data={"value": "X", "version": "1"},
                           headers={"Referer": "http://localhost/carts/quote-open"})
    assert response.status_code == 302 and response.headers["Location"] == "/carts/quote-open"
    response = client.post("/carts/quote-open/custom-reference", data={"value": "X", "version": "1"},
                           headers={**HTMX, "HX-Current-URL": "http://localhost/carts/quote-open"})
    assert response.status_code == 400 and response.headers["HX-Redirect"] == "/carts/quote-open"
    assert _refs(records, "quote-open") == [("PO-1", True)]


def _save_after_the_session_expired(app, headers):
    """An agent's save on quote-open, sent after the session ended with the page still open."""
    client = app.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    with client.session_transaction() as session:
        session.clear()
    return client.post("/carts/quote-open/custom-reference", data={"csrf_token": token, "value": "X", "version": "1"},
                       headers=headers)


def test_expired_session_sends_htmx_to_login_and_back(records):
    response = _save_after_the_session_expired(
        records, {**HTMX, "HX-Current-URL": "http://localhost/carts/quote-open"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/carts/quote-open"
    assert _refs(records, "quote-open") == [("PO-1", True)]


def test_audit_failure_leaves_the_reference_unchanged(records, monkeypatch):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")

    def broken(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "append_event", broken)
    response = client.post("/carts/quote-open/custom-reference", headers=HTMX,
                           data={"csrf_token": token, "value": "PO-LOST", "version": str(_version(records, Cart, "quote-open"))})
    assert response.status_code == 500
    assert _refs(records, "quote-open") == [("PO-1", True)]


def test_two_agents_saving_at_the_same_moment_one_wins(records):
    import threading

    clients = [records.test_client(), records.test_client()]
    for client in clients:
        login(client, "agent")
    tokens = [_page(client, "/carts/quote-open") for client in clients]
    version = str(_version(records, Cart, "quote-open"))
    start, statuses = threading.Barrier(2), {}

    def save(index: int) -> None:
        start.wait()
        response = clients[index].post("/carts/quote-open/custom-reference", headers=HTMX, data={
            "csrf_token": tokens[index], "value": f"PO-RACE-{index}", "version": version})
        statuses[index] = response.status_code

    threads = [threading.Thread(target=save, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses.values()) == [200, 409]
    winner = next(index for index, status in statuses.items() if status == 200)
    assert _refs(records, "quote-open")[-1] == (f"PO-RACE-{winner}", True)
    assert len([e for e in _events(records) if (e[4] or "").startswith("PO-RACE")]) == 1
    with records.app_context():
        assert audit.verify_chain(db.session).ok


def _erp_id(app, value):
    with app.app_context():
        return db.session.scalar(select(Reference.id).where(Reference.value == value))


def test_changing_a_row_someone_else_changed_shows_both_values(records):
    first, second = records.test_client(), records.test_client()
    login(first, "agent")
    login(second, "agent")
    token_first, token_second = _page(first, "/carts/quote-open"), _page(second, "/carts/quote-open")
    version, erp_id = str(_version(records, Cart, "quote-open")), _erp_id(records, "SO-1")
    assert first.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                      data={"csrf_token": token_first, "value": "SO-FIRST", "version": version}).status_code == 200
    response = second.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                           data={"csrf_token": token_second, "value": "SO-SECOND", "version": version})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert 'data-testid="conflict-current">SO-FIRST<' in page and 'data-testid="conflict-mine">SO-SECOND<' in page
    assert _refs(records, "quote-open", "erp") == [("SO-1", False), ("SO-FIRST", True)]


def test_retiring_a_row_someone_else_changed_is_a_conflict_not_a_success(records):
    client = records.test_client()
    login(client, "agent")
    token, erp_id = _page(client, "/carts/quote-open"), _erp_id(records, "SO-1")
    version = str(_version(records, Cart, "quote-open"))
    client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                data={"csrf_token": token, "value": "SO-NEW", "version": version})
    response = client.post(f"/carts/quote-open/references/{erp_id}/retire", headers=HTMX,
                           data={"csrf_token": token, "version": version})
    assert response.status_code == 409 and "SO-NEW" in response.get_data(as_text=True)
    assert _refs(records, "quote-open", "erp")[-1] == ("SO-NEW", True)
    # a forged change of the retired row does not bring it back either
    response = client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                           data={"csrf_token": token, "value": "SO-REVIVED", "version": str(_version(records, Cart, "quote-open"))})
    assert response.status_code == 409
    assert "SO-REVIVED" not in [value for value, _ in _refs(records, "quote-open", "erp")]


def test_duplicate_warning_names_orders_too(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", "PO-O", headers=HTMX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "order DE--1042" in body and "cart quote-ordered" in body


@pytest.mark.parametrize("field", ["value", "reason"])
def test_text_direction_controls_are_refused(records, field):
    client = records.test_client()
    login(client, "supervisor")
    data = {"value": "PO-7", "reason": "checked"}
    data[field] = "PO\u202e7" if field == "value" else "ok\u202ereversed"
    response = _post_custom(client, records, "quote-locked", data["value"], headers=HTMX, reason=data["reason"])
    assert response.status_code == 422 and "direction" in response.get_data(as_text=True)


def test_an_absurd_version_number_is_a_conflict_not_a_crash(records):
    client = records.test_client()
    login(client, "agent")
    response = _post_custom(client, records, "quote-open", "PO-9", version="99999999999999999999999", headers=HTMX)
    assert response.status_code == 409


def test_without_javascript_an_expired_session_returns_to_the_record_page(records):
    response = _save_after_the_session_expired(
        records, {"Referer": "http://localhost/carts/quote-open/custom-reference"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/carts/quote-open"


@pytest.mark.parametrize("path", ["/carts/%00x", "/orders/DE--%00", "/carts/no-such-cart"])
def test_a_record_url_that_names_nothing_is_a_404_page(records, path):
    client = records.test_client()
    login(client, "agent")
    response = client.get(path)
    assert response.status_code == 404
    assert "No " in response.get_data(as_text=True)


def _add(client, app, token, kind, value):
    response = client.post("/carts/quote-open/references", headers=HTMX, data={
        "csrf_token": token, "kind": kind, "value": value, "version": str(_version(app, Cart, "quote-open"))})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_another_reference_of_the_same_kind_is_not_taken_for_a_replacement(records):
    # Two invoices on one cart; the first is retired by someone else. Saving the first again is a
    # conflict with nothing in its place, not with the second invoice's value.
    first, second = records.test_client(), records.test_client()
    login(first, "agent")
    login(second, "agent")
    token_first, token_second = _page(first, "/carts/quote-open"), _page(second, "/carts/quote-open")
    _add(first, records, token_first, "invoice", "INV-AAA-1")
    _add(first, records, token_first, "invoice", "INV-BBB-2")
    stale_version, aaa = str(_version(records, Cart, "quote-open")), _erp_id(records, "INV-AAA-1")
    assert first.post(f"/carts/quote-open/references/{aaa}/retire", headers=HTMX,
                      data={"csrf_token": token_first, "version": stale_version}).status_code == 200
    response = second.post(f"/carts/quote-open/references/{aaa}", headers=HTMX,
                           data={"csrf_token": token_second, "value": "INV-AAA-9", "version": stale_version})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and 'data-testid="conflict-current">(none)<' in page, page
    assert "INV-BBB-2" not in page.split('data-testid="conflict-current">')[1].split("<")[0]
    # Retiring it again is what already happened: said so, not reported as someone else's change.
    response = second.post(f"/carts/quote-open/references/{aaa}/retire", headers=HTMX,
                           data={"csrf_token": token_second, "version": stale_version})
    assert response.status_code == 200 and "Already saved" in response.get_data(as_text=True)
    assert _refs(records, "quote-open", "invoice") == [("INV-AAA-1", False), ("INV-BBB-2", True)]


def test_a_chain_of_changes_shows_the_latest_value_as_current(records):
    client = records.test_client()
    login(client, "agent")
    token, erp_id = _page(client, "/carts/quote-open"), _erp_id(records, "SO-1")
    stale = str(_version(records, Cart, "quote-open"))
    client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                data={"csrf_token": token, "value": "SO-2", "version": stale})
    client.post(f"/carts/quote-open/references/{_erp_id(records, 'SO-2')}", headers=HTMX,
                data={"csrf_token": token, "value": "SO-3", "version": str(_version(records, Cart, "quote-open"))})
    response = client.post(f"/carts/quote-open/references/{erp_id}", headers=HTMX,
                           data={"csrf_token": token, "value": "SO-MINE", "version": stale})
    assert response.status_code == 409 and 'data-testid="conflict-current">SO-3<' in response.get_data(as_text=True)


def _other_refs(app, key):
    """The cart's `other` references: id, value and whether each is active."""
    with app.app_context():
        cart_id = db.session.scalar(select(Cart.id).where(Cart.key == key))
        return [(r.id, r.value, r.active) for r in db.session.scalars(
            select(Reference).where(Reference.cart_id == cart_id, Reference.kind == "other").order_by(Reference.id))]


def test_changing_a_reference_into_another_one_of_the_record_is_refused(records):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    _add(client, records, token, "other", "SO 124")
    _add(client, records, token, "other", "SO-128")
    before, events = _other_refs(records, "quote-open"), _events(records)
    so_124 = before[0][0]
    for value in ["SO-128", "so 128"]:  # the other row as written, and another way of writing it
        response = client.post(f"/carts/quote-open/references/{so_124}", headers=HTMX, data={
            "csrf_token": token, "value": value, "version": str(_version(records, Cart, "quote-open"))})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, page
        assert "already has “SO-128”, the same reference written another way" in page
        assert f'value="{value}"' in page  # the typing is kept
    assert _other_refs(records, "quote-open") == before and _events(records) == events
    # Written another way on its own row is still a change of that row.
    response = client.post(f"/carts/quote-open/references/{so_124}", headers=HTMX, data={
        "csrf_token": token, "value": "SO-124", "version": str(_version(records, Cart, "quote-open"))})
    assert response.status_code == 200
    assert [(value, active) for _, value, active in _other_refs(records, "quote-open")] == [
        ("SO 124", False), ("SO-128", True), ("SO-124", True)]


def test_adding_the_same_value_twice_is_still_a_double_click_not_a_refusal(records):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    _add(client, records, token, "other", "SO-128")
    response = client.post("/carts/quote-open/references", headers=HTMX, data={
        "csrf_token": token, "kind": "other", "value": "SO-128", "version": str(_version(records, Cart, "quote-open"))})
    assert response.status_code == 200 and "Already saved" in response.get_data(as_text=True)
    assert [value for _, value, _ in _other_refs(records, "quote-open")] == ["SO-128"]


# Reference.id is an INTEGER column: 32 bits on PostgreSQL, 64 on SQLite; beyond either it names no row.
TOO_BIG_IDS = [str(2**31), str(2**63), "99999999999999999999999"]


@pytest.mark.parametrize("reference_id", [str(2**31 - 1), *TOO_BIG_IDS])
@pytest.mark.parametrize("action", ["", "/retire"])
def test_a_reference_id_beyond_any_row_is_not_found(records, reference_id, action):
    client = records.test_client()
    login(client, "supervisor")
    token = _page(client, "/orders/DE--1042")
    events = _events(records)
    response = client.post(f"/orders/DE--1042/references/{reference_id}{action}", headers=HTMX, data={
        "csrf_token": token, "value": "SO-9", "reason": "checked", "version": str(_version(records, Order, "DE--1042"))})
    assert response.status_code == 404
    assert "does not belong to this record" in response.get_data(as_text=True)
    assert _events(records) == events


@pytest.mark.parametrize("reference_id", TOO_BIG_IDS)
def test_a_get_with_a_reference_id_beyond_any_row_is_no_server_error(records, reference_id):
    client = records.test_client()
    login(client, "agent")
    for path in [f"/carts/quote-open/references/{reference_id}", f"/carts/quote-open/references/{reference_id}/retire"]:
        assert client.get(path).status_code == 405  # the edit routes take posts only


def _post_on_the_order(client, app, token, path, value=""):
    return client.post(f"/orders/DE--1042/references/{path}", headers=HTMX, data={
        "csrf_token": token, "value": value, "reason": "ERP corrected", "version": str(_version(app, Order, "DE--1042"))})


def test_changing_or_retiring_a_reference_retired_before_the_page_says_it_is_retired(records):
    with records.app_context():
        order = db.session.scalar(select(Order).where(Order.order_reference == "DE--1042"))
        old_id = add_reference(order, "erp", "SO-158").id
        db.session.commit()
    client = records.test_client()
    login(client, "supervisor")
    token = _page(client, "/orders/DE--1042")
    assert _post_on_the_order(client, records, token, old_id, "SO-159").status_code == 200
    events = _events(records)
    token = _page(client, "/orders/DE--1042")  # reloaded: the version is current
    for path, value in [(f"{old_id}/retire", ""), (old_id, "SO-160"), (old_id, "SO-159")]:
        response = _post_on_the_order(client, records, token, path, value)
        page = response.get_data(as_text=True)
        assert response.status_code == 409, page
        assert "This reference is already retired" in page and "Someone else" not in page
        assert 'data-testid="conflict-current">SO-159<' in page
    assert _events(records) == events


def test_retiring_a_reference_retired_before_the_page_says_so_instead_of_already_saved(records):
    client = records.test_client()
    login(client, "agent")
    token, erp_id = _page(client, "/carts/quote-open"), _erp_id(records, "SO-1")
    retire = lambda: client.post(f"/carts/quote-open/references/{erp_id}/retire", headers=HTMX, data={  # noqa: E731
        "csrf_token": token, "version": str(_version(records, Cart, "quote-open"))})
    assert retire().status_code == 200
    events = _events(records)
    response = retire()
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "This reference is already retired" in page
    assert "Already saved" not in page and "Someone else" not in page
    assert _events(records) == events


def test_invisible_characters_at_the_edges_of_a_value_are_not_saved(records):
    client = records.test_client()
    login(client, "agent")
    token = _page(client, "/carts/quote-open")
    _add(client, records, token, "other", "\ufeffSO-127\u200b")
    assert [value for _, value, _ in _other_refs(records, "quote-open")] == ["SO-127"]
    assert _post_custom(client, records, "quote-open", "\u2060PO 5 \ufeff", headers=HTMX).status_code == 200
    assert _refs(records, "quote-open")[-1] == ("PO 5", True)
