import re

from playwright.sync_api import expect

from dashboard.models import db

from ..factories import make_cart, make_customer, make_order
from .conftest import log_in, screenshot


def test_keyboard_flow_on_the_search_page(app, new_page):
    with app.app_context():
        make_customer()
        make_order("DE--2001", custom="PO-7788-A")
        make_order("DE--2002", custom="PO-7788-B")
        make_cart("quote-950", name="Tools", custom="PO-7788-C")
        db.session.commit()

    page = new_page()
    log_in(page, "agent")
    box = page.get_by_role("searchbox")
    page.get_by_role("heading", name="Find an order or a cart").click()  # focus leaves the box
    expect(box).not_to_be_focused()
    page.keyboard.press("/")
    expect(box).to_be_focused()

    page.keyboard.type("PO-7788")
    rows = page.locator("#results tr[data-result]")
    expect(rows).to_have_count(3)
    page.keyboard.press("ArrowDown")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    expect(rows.nth(0)).not_to_have_class(re.compile(r"\bselected\b"))
    screenshot(page, "search-keyboard")
    second = rows.nth(1).locator("a.record-link").inner_text()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile(re.escape(second)))).to_be_visible()

    page.go_back()
    box = page.get_by_role("searchbox")
    box.fill("po 7788 b")
    expect(page.locator(".best-match")).to_contain_text("DE--2002")
    screenshot(page, "search-exact")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Order DE--2002")).to_be_visible()

    page.go_back()
    box = page.get_by_role("searchbox")
    expect(page.locator(".best-match")).to_contain_text("DE--2002")
    # Enter pressed before the search answers: the match on screen is the previous query's. It must
    # not open; the form asks for the new query instead. (The live search answers nothing here.)
    page.route(_is_search, _live_search_never_answers)
    box.fill("po 7788 a")
    box.press("Enter")
    expect(page.locator(".best-match")).to_contain_text("DE--2001")
    page.unroute(_is_search, _live_search_never_answers)
    page.get_by_role("searchbox").press("Enter")
    expect(page.get_by_role("heading", name="Order DE--2001")).to_be_visible()

    page.go_back()
    box = page.get_by_role("searchbox")
    box.focus()
    box.press("Escape")
    expect(box).to_have_value("")
    expect(page.get_by_role("heading", name="Find an order or a cart")).to_be_visible()


def _is_search(url: str) -> bool:
    return "/search" in url


def _live_search_never_answers(route):
    if route.request.headers.get("hx-request"):
        route.fulfill(status=204)  # htmx swaps nothing on 204
    else:
        route.continue_()
