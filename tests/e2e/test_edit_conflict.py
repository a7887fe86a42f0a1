from playwright.sync_api import Page, expect

from dashboard.models import db

from ..factories import make_cart, make_customer
from .conftest import log_in, screenshot


def open_cart_as_agent(app, new_page, key: str, **cart) -> Page:
    """A cart with Jana Keller as its customer, open in a new browser as the agent."""
    with app.app_context():
        make_customer()
        make_cart(key, **cart)
        db.session.commit()
    page = new_page()
    log_in(page, "agent", path=f"/carts/{key}")
    return page


def test_two_agents_edit_one_cart_the_second_sees_the_conflict(app, new_page):
    with app.app_context():
        make_customer()
        make_cart("quote-777", name="Monitors", custom="PO-OLD")
        db.session.commit()

    first, second = new_page(), new_page()
    for page, user in ((first, "agent"), (second, "agent")):
        log_in(page, user, path="/carts/quote-777")
        expect(page.get_by_role("heading", name="Cart quote-777")).to_be_visible()

    first_box = first.get_by_label("Custom order reference", exact=True)
    first_box.fill("PO-FIRST")
    first.locator("#references").get_by_role("button", name="Save").first.click()
    expect(first.locator("#references").get_by_role("status")).to_contain_text("Saved.")
    expect(first.locator("#references").get_by_role("cell", name="PO-FIRST")).to_be_visible()

    second_box = second.get_by_label("Custom order reference", exact=True)
    second_box.fill("PO-SECOND")
    second.locator("#references").get_by_role("button", name="Save").first.click()
    conflict = second.locator(".conflict")
    expect(conflict).to_contain_text("Someone else changed this record")
    expect(conflict.get_by_test_id("conflict-current")).to_have_text("PO-FIRST")
    expect(conflict.get_by_test_id("conflict-mine")).to_have_text("PO-SECOND")
    expect(second.get_by_label("Custom order reference", exact=True)).to_have_value("PO-SECOND")
    screenshot(second, "edit-conflict")

    supervisor = new_page()
    log_in(supervisor, "supervisor", path="/audit")
    change = supervisor.locator("tr", has_text="PO-FIRST").filter(has_text="quote-777")
    expect(change.first).to_contain_text("PO-OLD")
    expect(change.first).to_contain_text("agent")
    expect(supervisor.locator("tr", has_text="PO-SECOND")).to_have_count(0)
    screenshot(supervisor, "audit-log")


def test_the_change_list_follows_an_in_place_edit(app, new_page):
    page = open_cart_as_agent(app, new_page, "quote-778", name="Desks", custom="PO-A")
    page.get_by_label("Custom order reference", exact=True).fill("PO-B")
    page.locator("#references").get_by_role("button", name="Save").first.click()
    expect(page.locator("#timeline")).to_contain_text("Reference changed")
    expect(page.locator("#timeline ins").first).to_have_text("PO-B")


def test_a_cart_locked_while_the_page_was_open_answers_in_place(app, new_page):
    from sqlalchemy import update

    from dashboard.models import Cart, CartState

    page = open_cart_as_agent(app, new_page, "quote-779", name="Lamps", custom="PO-A")
    with app.app_context():  # the buyer sends the cart for approval meanwhile
        db.session.execute(update(Cart).where(Cart.key == "quote-779").values(state=CartState.LOCKED))
        db.session.commit()
    page.get_by_label("Custom order reference", exact=True).fill("PO-B")
    page.locator("#references").get_by_role("button", name="Save").first.click()
    expect(page.locator("#references")).to_contain_text("only a supervisor may change it")


def test_typing_survives_an_expired_session(app, new_page):
    page = open_cart_as_agent(app, new_page, "quote-780", name="Shelves", custom="PO-A")
    page.get_by_label("Custom order reference", exact=True).fill("PO-TYPED-BEFORE-EXPIRY")
    page.context.clear_cookies()  # the session ends while the page stays open
    page.locator("#references").get_by_role("button", name="Save").first.click()

    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("Your session ended")).to_be_visible()
    page.get_by_label("User name").fill("agent")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Cart quote-780")).to_be_visible()
    expect(page.get_by_label("Custom order reference", exact=True)).to_have_value("PO-TYPED-BEFORE-EXPIRY")
    expect(page.get_by_text("Restored what you typed")).to_be_visible()
    page.locator("#references").get_by_role("button", name="Save").first.click()
    expect(page.locator("#references").get_by_role("cell", name="PO-TYPED-BEFORE-EXPIRY")).to_be_visible()


def test_typing_in_other_forms_survives_a_save(app, new_page):
    page = open_cart_as_agent(app, new_page, "quote-781", name="Chairs", custom="PO-A")
    page.get_by_label("New reference value").fill("INV-STILL-TYPING")
    page.get_by_label("Custom order reference", exact=True).fill("PO-B")
    page.locator("#references").get_by_role("button", name="Save").first.click()
    expect(page.locator("#references").get_by_role("cell", name="PO-B")).to_be_visible()
    expect(page.get_by_label("New reference value")).to_have_value("INV-STILL-TYPING")


def test_an_agent_retires_a_reference_in_place(app, new_page):
    page = open_cart_as_agent(app, new_page, "quote-778", name="Desks", erp="SO-778")
    row = page.locator("#references tr", has_text="SO-778")
    row.get_by_role("button", name="Retire").click()
    expect(page.locator("#references").get_by_role("status")).to_be_visible()
    expect(page.locator("#references tr", has_text="SO-778")).to_contain_text("retired")
    screenshot(page, "reference-retired")
