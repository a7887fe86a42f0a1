"""The write side: who may change what, and the one function that changes a reference with its audit event.

Every path that changes a reference (pages, imports, the demo generator, the API, the Spryker sync)
calls `apply_change`, which writes the reference and its audit event in the caller's transaction;
the caller commits once, so both are written or neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from . import audit
from .models import Cart, CartState, Order, Reference, Role, ROLE_RANK, utcnow
from .references import Kind, matching_key


class Action(StrEnum):
    ADDED = "reference.added"
    CHANGED = "reference.changed"
    RETIRED = "reference.retired"


Owner = Order | Cart


def record_type(owner: Owner) -> str:
    return "order" if isinstance(owner, Order) else "cart"


def record_key(owner: Owner) -> str:
    return owner.order_reference if isinstance(owner, Order) else owner.key


@dataclass(frozen=True)
class EditDecision:
    allowed: bool
    reason_required: bool = False
    message: str = ""  # lazily translated: str() it where it is shown or stored
    read_only_order: Order | None = None  # for ordered carts: the order to edit instead


def edit_policy(role: str | None, owner: Owner) -> EditDecision:
    """The one rule of who may change references on what. Every route asks it."""
    rank = ROLE_RANK.get(Role(role), 0) if role in ROLE_RANK else 0
    supervisor = rank >= ROLE_RANK[Role.SUPERVISOR]
    if isinstance(owner, Order):
        if supervisor:
            return EditDecision(True, reason_required=True)
        return EditDecision(False, message=_l("Only a supervisor may change references on an order."))
    if owner.state == CartState.OPEN:
        return EditDecision(True) if rank else EditDecision(False, message=_l("Log in to edit."))
    if owner.state == CartState.LOCKED:
        if supervisor:
            return EditDecision(True, reason_required=True)
        return EditDecision(False, message=_l("This cart is locked; only a supervisor may change it."))
    if owner.state == CartState.ORDERED:
        return EditDecision(
            False,
            message=_l("This cart has been ordered and is read-only; change the order instead."),
            read_only_order=owner.order,
        )
    return EditDecision(False, message=_l("This cart was deleted in the shop and is read-only."))


def active_custom(session: Session, owner: Owner) -> Reference | None:
    return session.scalar(
        select(Reference).where(
            _owned_by(owner), Reference.kind == Kind.CUSTOM, Reference.active.is_(True)
        )
    )


def _owned_by(owner: Owner):
    if isinstance(owner, Order):
        return Reference.order_id == owner.id
    return Reference.cart_id == owner.id


def bump_version(session: Session, owner: Owner, expected: int | None) -> bool:
    """Advance the record's version if it is still `expected`; False means someone saved first.

    A conditional UPDATE, so two concurrent saves cannot both pass the check.
    """
    model = type(owner)
    statement = update(model).where(model.id == owner.id)
    if expected is not None:
        statement = statement.where(model.version == expected)
    values = {"version": model.version + 1}
    if isinstance(owner, Cart):
        values["updated_at"] = utcnow()
    result = session.execute(statement.values(**values).execution_options(synchronize_session=False))
    session.expire(owner, ["version"])
    return result.rowcount == 1


def apply_change(
    session: Session,
    owner: Owner,
    *,
    kind: str,
    new_value: str | None,
    event: audit.EventData,
    source: str,
    target: Reference | None = None,
) -> Reference | None:
    """Add, change or retire one reference and write its audit event, in the caller's transaction.

    - target None, new_value set: add a reference (for `custom`, the active one is replaced).
    - target set, new_value set: change it (the old one is retired, a new one added, so history stays).
    - new_value None: retire target (or the active custom reference).
    Returns the new reference, if any. The event's action, record and values are filled in here.
    """
    now = utcnow()
    if kind == Kind.CUSTOM and target is None:
        target = active_custom(session, owner)
    old_value = target.value if target is not None else None
    if target is not None:
        target.active = False
        target.retired_at = now
        target.retired_by = event.actor.name
    created = None
    if new_value is not None:
        created = Reference(
            kind=kind,
            value=new_value,
            key=matching_key(new_value),
            active=True,
            source=source,
            created_at=now,
            created_by=event.actor.name,
            order_id=owner.id if isinstance(owner, Order) else None,
            cart_id=owner.id if isinstance(owner, Cart) else None,
        )
        session.add(created)
    event.action = (
        Action.RETIRED if new_value is None else Action.ADDED if old_value is None else Action.CHANGED
    )
    event.record_type, event.record_key, event.kind = record_type(owner), record_key(owner), kind
    event.old_value, event.new_value, event.occurred_at = old_value, new_value, now
    session.flush()
    audit.append_event(session, event)
    return created


def _not_owned_by(owner: Owner):
    # Spelled out: NOT (cart_id = x) is NULL, not true, for the references of orders.
    column = Reference.order_id if isinstance(owner, Order) else Reference.cart_id
    return or_(column.is_(None), column != owner.id)


def same_reference_on_record(owner: Owner, kind: str, value: str, target: Reference | None = None) -> Reference | None:
    """The active reference of this kind that `value` is, as written or spelt another way ("1z5r 8939..."
    for "1Z5R8939..."), `target` (the reference being changed) aside: one reference is one row, since
    search cannot tell two apart. Adding a value already there as written is a double click, not a
    second row: callers check that first."""
    key = matching_key(value)
    return next((ref for ref in owner.references
                 if ref.active and ref.kind == kind and ref.key == key and ref is not target),
                None)


def duplicates_elsewhere(session: Session, owner: Owner, value: str) -> list[tuple[str, str]]:
    """Other records holding the same key actively: a warning, never a refusal."""
    key = matching_key(value)
    rows = session.execute(
        select(Reference.order_id, Reference.cart_id)
        .where(Reference.key == key, Reference.active.is_(True), _not_owned_by(owner))
        .limit(10)
    ).all()
    order_ids = {order_id for order_id, _ in rows if order_id}
    cart_ids = {cart_id for _, cart_id in rows if cart_id}
    found = []
    if order_ids:
        found += [("order", ref) for ref in session.scalars(select(Order.order_reference).where(Order.id.in_(order_ids)))]
    if cart_ids:
        found += [("cart", ref) for ref in session.scalars(select(Cart.key).where(Cart.id.in_(cart_ids)))]
    return found
