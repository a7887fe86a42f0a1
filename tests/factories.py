"""Small records for tests, written through the same paths as the product (audit included)."""
from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timezone

from dashboard import audit, editing
from dashboard.indexing import reindex
from dashboard.models import Cart, CartState, Customer, Order, db
from dashboard.references import Source

TEST_ACTOR = audit.Actor("system", "test-fixture", None)


def make_customer(reference: str = "DE--500", email: str = "jana.keller@example.com") -> Customer:
    customer = Customer(customer_reference=reference, email=email, first_name="Jana", last_name="Keller")
    db.session.add(customer)
    db.session.flush()
    reindex(db.session, customer)
    return customer


def make_order(reference: str = "DE--1042", *, customer_reference: str = "DE--500", cart: Cart | None = None,
               placed_at: datetime | None = None, **references: str) -> Order:
    order = Order(
        order_reference=reference, store="DE", customer_reference=customer_reference,
        email="jana.keller@example.com", name="Jana Keller", currency="EUR", grand_total=12999,
        item_count=2, status="shipped", placed_at=placed_at or datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc),
        cart_id=cart.id if cart else None, version=1,
    )
    db.session.add(order)
    db.session.flush()
    reindex(db.session, order)
    for kind, value in references.items():
        add_reference(order, kind, value)
    return order


def make_cart(key: str = "quote-900", *, name: str = "Office chairs", state: str = CartState.OPEN,
              customer_reference: str = "DE--500", **references: str) -> Cart:
    now = datetime.now(timezone.utc)
    cart = Cart(
        key=key, uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, key)), name=name, customer_reference=customer_reference,
        store="DE", currency="EUR", is_default=False, item_count=1, unit_count=1, grand_total=4999, state=state,
        version=1, created_at=now, updated_at=now,
    )
    db.session.add(cart)
    db.session.flush()
    reindex(db.session, cart)
    for kind, value in references.items():
        add_reference(cart, kind, value)
    return cart


def add_reference(owner, kind: str, value: str, *, active: bool = True):
    reference = editing.apply_change(
        db.session, owner, kind=kind, new_value=value, source=Source.IMPORT,
        event=audit.EventData(action="", actor=TEST_ACTOR),
    )
    if not active:
        editing.apply_change(
            db.session, owner, kind=kind, new_value=None, source=Source.IMPORT, target=reference,
            event=audit.EventData(action="", actor=TEST_ACTOR),
        )
    return reference
