"""Order and cart pages: every reference, the customer, state and totals, links between them."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select, text

from ..auth import once_more_on_dead_connection, require_role
from ..editing import edit_policy, record_key, record_type
from ..models import AuditEvent, Cart, Customer, Order, Role, db
from ..references import Kind

EDITABLE_KINDS = [kind for kind in Kind if kind != Kind.CUSTOM]

bp = Blueprint("records", __name__)


def _customer(customer_reference: str | None) -> Customer | None:
    if not customer_reference:
        return None
    return db.session.scalar(select(Customer).where(Customer.customer_reference == customer_reference))


def _timeline(record_type: str, record_key: str) -> list[AuditEvent]:
    return list(db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.record_type == record_type, AuditEvent.record_key == record_key)
        .order_by(AuditEvent.seq.desc())
        .limit(100)
    ))


COLLECTIONS: dict[str, type[Order] | type[Cart]] = {"orders": Order, "carts": Cart}


def load_owner(collection: str, record_key: str) -> Order | Cart:
    """The order or cart a URL names, or a 404 that says which one was not found."""
    model = COLLECTIONS[collection]
    column = Order.order_reference if model is Order else Cart.key
    # No key holds a NUL, and PostgreSQL refuses one in a parameter: a typed or pasted URL gets the 404.
    owner = None if "\x00" in record_key else db.session.scalar(select(model).where(column == record_key))
    if owner is None:
        message = _("No order %(key)s.", key=record_key) if model is Order else _("No cart %(key)s.", key=record_key)
        abort(404, description=message)
    return owner


def record_page_context(owner: Order | Cart) -> dict:
    """What an order or cart page shows; the edit views render the same page after a post."""
    kind, key = record_type(owner), record_key(owner)
    context = {
        kind: owner,
        "owner": owner,
        "collection": kind + "s",
        "record_key": key,
        "customer": _customer(owner.customer_reference),
        "policy": edit_policy(current_user.role, owner),
        "timeline": _timeline(kind, key),
        "edit_kinds": EDITABLE_KINDS,
        "outcome": None,
    }
    if isinstance(owner, Cart):
        context["order"] = owner.order
    return context


def page_template(owner: Order | Cart) -> str:
    return "pages/order.html" if isinstance(owner, Order) else "pages/cart.html"


@bp.route("/orders/<order_reference>")
@require_role(Role.AGENT)
def order(order_reference: str):
    owner = load_owner("orders", order_reference)
    return render_template(page_template(owner), **record_page_context(owner))


@bp.route("/carts/<cart_key>")
@require_role(Role.AGENT)
def cart(cart_key: str):
    owner = load_owner("carts", cart_key)
    return render_template(page_template(owner), **record_page_context(owner))


@bp.route("/healthz")
def healthz():
    """For load balancers and the operator: no login, no data, only whether the database answers."""
    try:
        # The first statement after a database restart meets a dead pooled connection: once more.
        once_more_on_dead_connection(lambda: db.session.execute(text("SELECT 1")))
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        db.session.rollback()
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
