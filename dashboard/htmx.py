"""htmx conventions: which requests want a fragment, and caches that keep the two apart."""
from __future__ import annotations

from flask import Flask, request


def wants_fragment(target_id: str) -> bool:
    """True when htmx asks for one region of the page (not for a history restore, which needs it all)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Target") == target_id
    )


def init_app(app: Flask) -> None:
    @app.after_request
    def vary_on_htmx(response):
        # The same URL answers a page or a fragment; caches must not serve one for the other.
        response.vary.add("HX-Request")
        response.vary.add("HX-Target")
        return response
