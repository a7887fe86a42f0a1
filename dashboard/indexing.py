"""Keeps the search terms of records' own fields (order reference, cart key, e-mail...) current.

The one place that says which of a record's own fields are searchable. The `*_fields` functions
take plain values so that bulk writers (the demo generator) use the same rules without ORM objects.
"""
from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from .models import Cart, Customer, Order, SearchField, SearchTerm
from .references import matching_key

# A search term: (key, field, value as entered, cut to the column's 255 characters)
Term = tuple[str, str, str]


def order_fields(order_reference: str | None) -> list[tuple[str, str | None]]:
    return [(SearchField.ORDER_REFERENCE.value, order_reference)]


def cart_fields(key: str | None, uuid: str | None, name: str | None) -> list[tuple[str, str | None]]:
    return [(SearchField.CART_KEY.value, key), (SearchField.CART_UUID.value, uuid), (SearchField.CART_NAME.value, name)]


def customer_fields(customer_reference: str | None, email: str | None) -> list[tuple[str, str | None]]:
    return [(SearchField.CUSTOMER_REFERENCE.value, customer_reference), (SearchField.EMAIL.value, email)]


def terms(fields: list[tuple[str, str | None]]) -> list[Term]:
    """The terms of a record's fields; a value without letters or digits has nothing to find."""
    found = []
    for field, value in fields:
        if value and (key := matching_key(value)):
            found.append((key, field, value[:255]))
    return found


def record_terms(record: Order | Cart | Customer) -> list[Term]:
    if isinstance(record, Order):
        return terms(order_fields(record.order_reference))
    if isinstance(record, Cart):
        return terms(cart_fields(record.key, record.uuid, record.name))
    return terms(customer_fields(record.customer_reference, record.email))


def record_type_of(record: Order | Cart | Customer) -> str:
    return {Order: "order", Cart: "cart", Customer: "customer"}[type(record)]


def term_rows(record: Order | Cart | Customer) -> list[dict]:
    record_type = record_type_of(record)
    return [
        {"key": key, "field": field, "record_type": record_type, "record_id": record.id, "value": value}
        for key, field, value in record_terms(record)
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
