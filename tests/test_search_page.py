"""The search page over HTTP: full page or region, escaping, limits, access."""
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from dashboard.models import db

from .conftest import login
from .factories import add_reference, make_cart, make_customer, make_order

REGION = {"HX-Request": "true", "HX-Target": "results"}


@pytest.fixture
def page_app(app):
    with app.app_context():
        make_customer()
        make_order("DE--1042", custom="<b>PO</b>-4711", erp="SO-1000123")
        make_cart("quote-900", name="<script>alert(1)</script>")
        db.session.commit()
    return app


def test_full_page_and_results_region_from_the_same_url(page_app):
    client = page_app.test_client()
    login(client, "agent")
    full = client.get("/search?q=SO-1000123")
    region = client.get("/search?q=SO-1000123", headers=REGION)
    assert full.status_code == region.status_code == 200
    assert "<html" in full.get_data(as_text=True) and 'id="results"' in full.get_data(as_text=True)
    body = region.get_data(as_text=True)
    assert "<html" not in body and "DE--1042" in body
    assert "HX-Request" in region.headers["Vary"]


def test_history_restore_gets_the_full_page(page_app):
    client = page_app.test_client()
    login(client, "agent")
    response = client.get("/search?q=SO-1000123", headers={**REGION, "HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_values_from_people_and_systems_are_escaped_and_highlighted(page_app):
    client = page_app.test_client()
    login(client, "agent")
    body = client.get("/search?q=pob4711", headers=REGION).get_data(as_text=True)
    assert "&lt;b&gt;<mark>PO&lt;/b&gt;-4711</mark>" in body
    assert "<b>PO" not in body
    body = client.get("/search?q=alert", headers=REGION).get_data(as_text=True)
    assert "<script>alert" not in body and "&lt;script&gt;" in body


def test_blank_query_shows_help_without_touching_the_database(page_app):
    client = page_app.test_client()
    login(client, "agent")
    statements = []
    with page_app.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        body = client.get("/search?q=%20%20", headers=REGION).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert "Find an order or a cart" in body
    assert not [sql for sql in statements if "references" in sql or "search_terms" in sql]


def test_query_over_255_characters_gets_a_message(page_app):
    client = page_app.test_client()
    login(client, "agent")
    response = client.get("/search", query_string={"q": "x" * 256}, headers=REGION)
    assert response.status_code == 200
    assert "at most 255 characters" in response.get_data(as_text=True)


def test_search_and_its_region_need_a_login(page_app):
    client = page_app.test_client()
    assert client.get("/search?q=SO").status_code == 302
    response = client.get("/search?q=SO", headers=REGION)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login?next=")
    assert "DE--1042" not in response.get_data(as_text=True)


def test_tracking_like_value_without_match_names_the_carrier(page_app):
    client = page_app.test_client()
    login(client, "agent")
    body = client.get("/search?q=1Z5R89390357567127", headers=REGION).get_data(as_text=True)
    assert "Nothing matches" in body and "UPS" in body and "ups.com" in body


def _thirty_bulk_orders_and_an_agent(app):
    """30 orders whose custom references start with PO-BULK, and a client logged in as an agent."""
    with app.app_context():
        for number in range(30):
            make_order(f"DE--9{number:03d}", custom=f"PO-BULK-{number:03d}")
        db.session.commit()
    client = app.test_client()
    login(client, "agent")
    return client


def test_show_all_of_one_group(page_app):
    client = _thirty_bulk_orders_and_an_agent(page_app)
    body = client.get("/search?q=PO-BULK", headers=REGION).get_data(as_text=True)
    assert body.count("data-result") == 20 and "Show all orders" in body
    body = client.get("/search?q=PO-BULK&group=orders", headers=REGION).get_data(as_text=True)
    assert body.count("data-result") == 30
    assert 'data-testid="capped"' not in body  # all of them are shown


def test_show_all_says_when_it_stops_short(page_app, monkeypatch):
    monkeypatch.setattr("dashboard.views.search.GROUP_ALL_LIMIT", 25)
    client = _thirty_bulk_orders_and_an_agent(page_app)
    body = client.get("/search?q=PO-BULK&group=orders", headers=REGION).get_data(as_text=True)
    assert body.count("data-result") == 25
    assert "Showing the first 25; more match." in body


def _best_match(body: str) -> str:
    start = body.index('class="best-match"')
    return body[start:body.index("</section>", start)]


def test_an_exact_match_on_a_retired_reference_says_so(page_app):
    with page_app.app_context():
        order = make_order("DE--1077")
        add_reference(order, "erp", "SO-OLD-77", active=False)
        db.session.commit()
    client = page_app.test_client()
    login(client, "agent")
    body = client.get("/search?q=so-old-77", headers=REGION).get_data(as_text=True)
    best_match = _best_match(body)
    assert "DE--1077" in best_match and "retired" in best_match


def test_an_order_reference_shared_with_a_customer_opens_the_order(both_app):
    """Customer DE--1042 has more orders than a page shows; order DE--1042 is still first and the best match."""
    first = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with both_app.app_context():
        make_customer()
        make_customer("DE--1042", "max.huber@example.com")
        make_order("DE--1042", placed_at=first)
        for number in range(25):
            make_order(f"DE--{5000 + number}", customer_reference="DE--1042",
                       placed_at=first + timedelta(days=number + 1))
        db.session.commit()
    client = both_app.test_client()
    login(client, "agent")
    body = client.get("/search?q=de-1042", headers=REGION).get_data(as_text=True)
    best_match = _best_match(body)
    assert "Order DE--1042" in best_match and "Order reference" in best_match
    rows = re.findall(r'<tr class="([^"]*)" data-result>(.*?)</tr>', body, re.S)
    assert len(rows) == 20 and "Show all orders" in body
    (first_class, first), *others = rows
    assert first_class == "result exact-single" and ">DE--1042</a>" in first and "Order reference" in first
    assert all(css == "result" and "Customer reference" in row and "tier-exact" in row for css, row in others)


def test_a_nul_in_the_query_is_dropped_not_written_into_the_page(page_app):
    client = page_app.test_client()
    login(client, "agent")
    body = client.get("/search?q=a%00b").get_data(as_text=True)
    assert "\x00" not in body and 'value="ab"' in body
