"""Error pages: a clear message, never a stack trace; fragments get fragments."""
from __future__ import annotations

from flask import Flask, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .auth import expired_login_form, login_manager, page_of, safe_next
from .models import db


def _render(status: int, title: str, message: str):
    template = "partials/_error.html" if request.headers.get("HX-Request") else "pages/error.html"
    return render_template(template, status=status, title=title, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        """An expired session or form: back to a fresh page, never a raw 400 inside a fragment.

        What the agent typed survives: app.js keeps form drafts in sessionStorage and puts
        them back when the page (after logging in again, if needed) loads.
        """
        if request.endpoint == "auth.login":  # a redirect would make the login page its own `next`
            return expired_login_form()
        if not current_user.is_authenticated:
            flash(_("Your session ended. Log in again; what you typed is kept."), "warning")
            return login_manager.unauthorized()
        flash(_("This form had expired. Check your entry and save again."), "warning")
        target = page_of(safe_next(request.headers.get("HX-Current-URL") or request.referrer)) or url_for("search.search")
        if request.headers.get("HX-Request"):
            response = make_response("", 400)
            response.headers["HX-Redirect"] = target
            return response
        return redirect(target)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _render(error.code or 500, error.name, error.description or "")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error")
        return _render(500, _("Something went wrong"), _("Nothing was saved. Try again; if it keeps happening, tell the team that runs Reference Desk."))
