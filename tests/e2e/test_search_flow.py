import re

from playwright.sync_api import expect

from dashboard.models import db

from ..factories import make_customer, make_order
from .conftest import log_in, screenshot


def test_agent_types_part_of_a_reference_opens_the_order_and_goes_back(app, new_page):
    with app.app_context():
        make_customer()
        make_order("DE--1042", custom="PO-2026-004711", erp="SO-1000123")
        make_order("DE--1043", custom="PO-2026-009999")
        db.session.commit()

    page = new_page()
    log_in(page, "agent")
    box = page.get_by_role("searchbox")
    expect(box).to_be_focused()
    screenshot(page, "search-empty")

    box.press_sequentially("0047", delay=30)
    results = page.locator("#results")
    expect(results.get_by_role("link", name="DE--1042")).to_be_visible()
    expect(results.get_by_role("link", name="DE--1043")).to_have_count(0)
    expect(results.locator("mark")).to_have_text("0047")
    expect(page).to_have_url(re.compile(r"/search\?q=0047$"))
    screenshot(page, "search-results")

    results.get_by_role("link", name="DE--1042").click()
    expect(page.get_by_role("heading", name="Order DE--1042")).to_be_visible()
    expect(page.locator("#references").get_by_role("cell", name="PO-2026-004711")).to_be_visible()
    screenshot(page, "order-page")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/search\?q=0047$"))
    # A full page, not a bare fragment: the header, the box with the query, and the results.
    expect(page.get_by_role("link", name="Reference Desk")).to_be_visible()
    expect(page.get_by_role("searchbox")).to_have_value("0047")
    expect(page.locator("#results").get_by_role("link", name="DE--1042")).to_be_visible()
