import io

from sqlalchemy import func, select

from dashboard import audit
from dashboard.integrations.spryker import import_carts, import_carts_file
from dashboard.models import AuditEvent, Cart, CartState, Reference, db

from .conftest import CARTS_FILE


def _cart(key: str) -> Cart:
    return db.session.scalar(select(Cart).where(Cart.key == key))


def test_imports_all_78_carts_from_the_real_file(app):
    with app.app_context():
        report = import_carts_file(db.session, CARTS_FILE)
        assert report.problems == []
        assert report.created == 78
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 78


def test_cart_fields_come_from_the_row_and_the_quote_json(app):
    with app.app_context():
        import_carts_file(db.session, CARTS_FILE)
        laptops = _cart("quote-22")
        assert (laptops.name, laptops.customer_reference, laptops.store) == ("Laptops", "DE--21", "DE")
        assert (laptops.item_count, laptops.unit_count) == (11, 13)
        assert (laptops.grand_total, laptops.currency) == (273839, "EUR")
        assert laptops.is_default is False and laptops.state == CartState.OPEN
        assert _cart("quote-1").is_default is True
        assert _cart("quote-23").currency == "CHF"
        snake = _cart("quote-78")
        assert (snake.grand_total, snake.currency, snake.item_count) == (74912, "EUR", 4)
        assert _cart("quote-77").name == '"All in" Conf Bundle'


def test_reimport_updates_and_never_duplicates(app):
    with app.app_context():
        import_carts_file(db.session, CARTS_FILE)
        events_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
        report = import_carts_file(db.session, CARTS_FILE)
        assert (report.created, report.updated, report.unchanged) == (0, 0, 78)
        # nothing changed, so nothing to record
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events_before
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 78
        assert audit.verify_chain(db.session).ok


def test_malformed_row_is_reported_with_its_line_and_the_rest_load(app):
    csv_text = (
        "key,name,customer_reference,store,is_default,quote_data\n"
        'quote-a,Good,DE--1,DE,1,"{""currency"":{""code"":""EUR""}}"\n'
        'quote-b,Broken,DE--1,DE,0,"{not json"\n'
        'quote-c,Locked,DE--2,DE,0,"{""currency"":{""code"":""EUR""},""isLocked"":true,""orderCustomReference"":""PO-77""}"\n'
    )
    with app.app_context():
        report = import_carts(db.session, io.StringIO(csv_text))
        assert report.created == 2
        assert len(report.problems) == 1 and report.problems[0].startswith("line 3: quote-b")
        locked = _cart("quote-c")
        assert locked.state == CartState.LOCKED
        custom = db.session.scalar(select(Reference).where(Reference.cart_id == locked.id))
        assert (custom.kind, custom.value, custom.key, custom.source) == ("custom", "PO-77", "po77", "import")
        assert _cart("quote-b") is None


def test_reimport_keeps_custom_references_agents_set(app):
    from .factories import add_reference

    with app.app_context():
        import_carts_file(db.session, CARTS_FILE)
        cart = _cart("quote-2")
        add_reference(cart, "custom", "PO-SET-BY-AGENT")
        db.session.commit()
        import_carts_file(db.session, CARTS_FILE)
        custom = db.session.scalars(select(Reference).where(Reference.cart_id == cart.id)).all()
        assert [(ref.value, ref.active) for ref in custom] == [("PO-SET-BY-AGENT", True)]
