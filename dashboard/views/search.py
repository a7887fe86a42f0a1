"""The search page: one box; the same URL answers a full page or, for htmx, the results region."""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from urllib.parse import quote

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from markupsafe import Markup

from ..auth import require_role
from ..formatting import highlighted, money, state_badge, when
from ..htmx import wants_fragment
from ..labels import translated
from ..models import Role, db
from ..references import MAX_VALUE_LENGTH
from ..search import ResultRow, SearchResults
from ..search import search as run_search
from ..tracking import identify_one

bp = Blueprint("search", __name__)

GROUPS = ("orders", "carts")
GROUP_ALL_LIMIT = 1000


@bp.route("/")
@require_role(Role.AGENT)
def index():
    return redirect(url_for("search.search"))


@dataclass(frozen=True)
class ResultLine:
    """One result row, ready to print: a page of results is built in Python, where it is cheap."""

    href: str
    title: str
    subtitle: str
    state: Markup
    customer: str
    detail: str
    date: Markup
    total: str
    tier: str
    tier_label: str
    field_label: str
    value: Markup
    retired: bool
    exact: bool


def _record_url(endpoint: str, argument: str):
    """url_for once per page, then the key put in: calling url_for for every row is slow."""
    template = url_for(endpoint, **{argument: "__KEY__"})
    return lambda key: template.replace("__KEY__", quote(key, safe=""))


def result_lines(results: SearchResults) -> dict[str, list[ResultLine]]:
    labels, exact = translated(), results.single_exact
    order_url = _record_url("records.order", "order_reference")
    cart_url = _record_url("records.cart", "cart_key")

    def line(row: ResultRow, href: str, title: str, subtitle: str, state: str, customer: str, detail: str, date) -> ResultLine:
        record, hit = row.record, row.hit
        return ResultLine(
            href=href, title=title, subtitle=subtitle, state=state_badge(state), customer=customer or "–",
            detail=detail or "", date=when(date), total=money(record.grand_total, record.currency),
            tier=hit.tier.label, tier_label=labels["tier_labels"][hit.tier.label],
            field_label=labels["field_labels"].get(hit.field, hit.field),
            value=highlighted(hit.value, row.highlight(results.key)), retired=not hit.active, exact=row is exact,
        )

    return {
        "orders": [line(row, order_url(o.order_reference), o.order_reference, "", o.status,
                        o.name or o.customer_reference, o.email, o.placed_at)
                   for row in results.orders.rows for o in [row.record]],
        "carts": [line(row, cart_url(c.key), c.key, c.name, c.state, c.customer_reference, "", c.updated_at)
                  for row in results.carts.rows for c in [row.record]],
    }


def _results_context(query: str, group: str | None) -> dict:
    """What the results region shows; blank or over-long input never reaches the database."""
    context: dict = {"query": query, "group": group if group in GROUPS else None, "results": None,
                     "too_long": False, "tracking_hint": None}
    if not query.strip():
        return context
    if len(query) > MAX_VALUE_LENGTH:
        context["too_long"] = True
        return context
    if context["group"]:  # "show all" of one group: look further and list everything found
        results = run_search(db.session, query, shown=GROUP_ALL_LIMIT, candidates=GROUP_ALL_LIMIT)
    else:
        results = run_search(db.session, query, shown=current_app.config["SEARCH_GROUP_LIMIT"])
    context["results"] = results
    context["lines"] = result_lines(results)
    context["tracking_hint"] = identify_one(query)
    return context


def reads_only(view):
    """The view only reads: on PostgreSQL its statements, from the user look-up on, run without a
    transaction, which saves the BEGIN and the ROLLBACK, two of the four round trips a search made;
    each statement still sees committed data. Anything that writes (an auth.denied event) ends this
    first and gets a new connection with a transaction of its own (auth.record_denied).

    Not on SQLite: it starts no transaction for reads anyway, and handing the connection back reset
    its isolation with a PRAGMA that made SQLite prepare the search statement anew (5 ms).
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        if db.engine.dialect.name != "sqlite":
            db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return view(*args, **kwargs)

    return wrapped


@bp.route("/search")
@reads_only
@require_role(Role.AGENT)
def search():
    # A NUL is never part of a reference (the key ignores it) and must not reach the page: HTML
    # escaping leaves it, and browsers turn it into a replacement character in the box.
    query = request.args.get("q", "").replace("\x00", "")
    context = _results_context(query, request.args.get("group"))
    if wants_fragment("results"):
        return render_template("partials/_results.html", **context)
    return render_template("pages/search.html", **context)
