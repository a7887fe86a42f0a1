"""Keeps the search terms of records' own fields (order reference, cart key, e-mail...) current."""
from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from .models import Cart, Customer, Order, SearchField, SearchTerm
from .references import matching_key


def record_terms(record: Order | Cart | Customer) -> list[tuple[str, str]]:
    """(field, value) pairs that make a record findable besides its references."""
    if isinstance(record, Order):
        pairs = [(SearchField.ORDER_REFERENCE, record.order_reference)]
    elif isinstance(record, Cart):
        pairs = [
            (SearchField.CART_KEY, record.key),
            (SearchField.CART_UUID, record.uuid),
            (SearchField.CART_NAME, record.name),
        ]
    else:
        pairs = [
            (SearchField.CUSTOMER_REFERENCE, record.customer_reference),
            (SearchField.EMAIL, record.email),
        ]
    return [(str(field), value) for field, value in pairs if value and matching_key(value)]


def record_type_of(record: Order | Cart | Customer) -> str:
    return {Order: "order", Cart: "cart", Customer: "customer"}[type(record)]


def term_rows(record: Order | Cart | Customer) -> list[dict]:
    record_type = record_type_of(record)
    return [
        {"key": matching_key(value), "field": field, "record_type": record_type,
         "record_id": record.id, "value": value[:255]}
        for field, value in record_terms(record)
    ]


def reindex(session: Session, record: Order | Cart | Customer) -> None:
    """Replace a record's terms; the record must have its id (flush first)."""
    session.execute(
        delete(SearchTerm).where(
            SearchTerm.record_type == record_type_of(record), SearchTerm.record_id == record.id
        )
    )
    rows = term_rows(record)
    if rows:
        session.execute(insert(SearchTerm), rows)
