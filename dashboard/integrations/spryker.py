"""Spryker data: the persistent-cart data-import file (multi_cart.csv) exactly as Spryker ships it."""
from __future__ import annotations

import csv
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, editing
from ..indexing import reindex
from ..models import Cart, CartState, Customer, utcnow
from ..references import InvalidValue, Kind, Source, clean_value

# Stable uuids for carts that arrive without one (the import file has none; spy_quote does).
CART_UUID_NAMESPACE = uuid.UUID("5f0c1f4e-3c1e-4d5e-9a57-6b1d2c3e4f50")
REQUIRED_COLUMNS = ("key", "name", "customer_reference", "store", "is_default", "quote_data")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def pick(data: dict[str, Any] | None, camel_name: str, default: Any = None) -> Any:
    """quote_data keys are camelCase in most rows and snake_case in some: accept both."""
    if not isinstance(data, dict):
        return default
    if camel_name in data:
        return data[camel_name]
    return data.get(_snake(camel_name), default)


@dataclass
class QuoteSummary:
    currency: str
    item_count: int
    unit_count: int
    grand_total: int
    custom_reference: str | None
    locked: bool


def summarise_quote(quote_data: str) -> QuoteSummary:
    data = json.loads(quote_data)
    if not isinstance(data, dict):
        raise ValueError("quote_data is not a JSON object")
    items = pick(data, "items") or []
    currency = pick(pick(data, "currency"), "code")
    if not currency:
        raise ValueError("quote_data has no currency code")
    return QuoteSummary(
        currency=str(currency),
        item_count=len(items),
        unit_count=sum(int(pick(item, "quantity", 0) or 0) for item in items),
        grand_total=int(pick(pick(data, "totals"), "grandTotal", 0) or 0),
        custom_reference=pick(data, "orderCustomReference") or None,
        locked=bool(pick(data, "isLocked", False)),
    )


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged


def _customer(session: Session, customer_reference: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.customer_reference == customer_reference))
    if customer is None:
        customer = Customer(customer_reference=customer_reference)
        session.add(customer)
        session.flush()
        reindex(session, customer)
    return customer


def _unchanged(cart: Cart, row: dict[str, str], summary: QuoteSummary) -> bool:
    """True when the row says what the cart already holds (a re-import writes nothing for it)."""
    state = CartState.LOCKED if summary.locked else CartState.OPEN
    return (
        cart.name == row["name"]
        and cart.customer_reference == (row["customer_reference"].strip() or None)
        and cart.store == row["store"].strip()
        and cart.is_default == (row["is_default"].strip() == "1")
        and (cart.currency, cart.item_count, cart.unit_count, cart.grand_total)
        == (summary.currency, summary.item_count, summary.unit_count, summary.grand_total)
        and (cart.state == state or cart.state in (CartState.ORDERED, CartState.DELETED))
    )


def _apply_row(session: Session, row: dict[str, str], summary: QuoteSummary, actor: audit.Actor) -> str:
    """Create or update one cart; says which: created, updated or unchanged."""
    key = row["key"].strip()
    cart = session.scalar(select(Cart).where(Cart.key == key))
    created = cart is None
    if cart is not None and _unchanged(cart, row, summary):
        _sync_custom_reference(session, cart, summary.custom_reference, actor)
        return "unchanged"
    if cart is None:
        cart = Cart(key=key, uuid=str(uuid.uuid5(CART_UUID_NAMESPACE, key)), created_at=utcnow(), version=1)
        session.add(cart)
    cart.name = row["name"]
    cart.customer_reference = row["customer_reference"].strip() or None
    cart.store = row["store"].strip()
    cart.is_default = row["is_default"].strip() == "1"
    cart.currency = summary.currency
    cart.item_count, cart.unit_count, cart.grand_total = summary.item_count, summary.unit_count, summary.grand_total
    if cart.state in (None, CartState.OPEN, CartState.LOCKED):
        cart.state = CartState.LOCKED if summary.locked else CartState.OPEN
    cart.updated_at = utcnow()
    session.flush()
    reindex(session, cart)
    if cart.customer_reference:
        _customer(session, cart.customer_reference)
    audit.append_event(session, audit.EventData(
        action="record.imported", actor=actor, record_type="cart", record_key=key,
        detail="created" if created else "updated",
    ))
    _sync_custom_reference(session, cart, summary.custom_reference, actor)
    return "created" if created else "updated"


def _sync_custom_reference(session: Session, cart: Cart, value: str | None, actor: audit.Actor) -> None:
    """Apply the file's custom reference when it has one that differs.

    A row without one says nothing about it: re-importing the file must not retire what agents set
    on the cart since.
    """
    wanted = clean_value(value, allow_empty=True) or None
    current = editing.active_custom(session, cart)
    if wanted is None or (current.value if current else None) == wanted:
        return
    editing.apply_change(
        session, cart, kind=Kind.CUSTOM, new_value=wanted, source=Source.IMPORT,
        event=audit.EventData(action="", actor=actor, reason="multi_cart.csv import"),
    )


def import_carts(session: Session, stream: TextIO, actor: audit.Actor = audit.SYSTEM) -> ImportReport:
    """Import every row; a malformed row is reported with its line number and skipped.

    Each row is its own transaction (a savepoint), so a bad row never leaves half a cart.
    """
    report = ImportReport()
    reader = csv.DictReader(stream)
    missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
        report.problems.append(f"line 1: missing columns {', '.join(missing)}")
        return report
    for row in reader:
        line = reader.line_num
        try:
            if not (row.get("key") or "").strip():
                raise ValueError("the key is empty")
            summary = summarise_quote(row["quote_data"] or "")
            with session.begin_nested():
                outcome = _apply_row(session, row, summary, actor)
            setattr(report, outcome, getattr(report, outcome) + 1)
        except (ValueError, TypeError, InvalidValue, AttributeError) as error:
            report.problems.append(f"line {line}: {row.get('key') or '?'}: {error}")
    session.commit()
    return report


def import_carts_file(session: Session, path: Path, actor: audit.Actor = audit.SYSTEM) -> ImportReport:
    with path.open(newline="", encoding="utf-8") as stream:
        return import_carts(session, stream, actor)
