"""The search page: one box; the same URL answers a full page or, for htmx, the results region."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..auth import require_role
from ..htmx import wants_fragment
from ..models import Role, db
from ..references import MAX_VALUE_LENGTH
from ..search import search as run_search
from ..tracking import identify_one

bp = Blueprint("search", __name__)

GROUPS = ("orders", "carts")
GROUP_ALL_LIMIT = 1000


@bp.route("/")
@require_role(Role.AGENT)
def index():
    return redirect(url_for("search.search"))


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
    context["tracking_hint"] = identify_one(query)
    return context


@bp.route("/search")
@require_role(Role.AGENT)
def search():
    query = request.args.get("q", "")
    context = _results_context(query, request.args.get("group"))
    if wants_fragment("results"):
        return render_template("partials/_results.html", **context)
    return render_template("pages/search.html", **context)
