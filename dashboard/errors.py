"""Error pages: a clear message, never a stack trace; fragments get fragments."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .models import db


def _render(status: int, title: str, message: str):
    template = "partials/_error.html" if request.headers.get("HX-Request") else "pages/error.html"
    return render_template(template, status=status, title=title, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return _render(
            400,
            _("This form has expired"),
            _("The page was open too long. Reload it and try again; copy what you typed first."),
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _render(error.code or 500, error.name, error.description or "")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error")
        return _render(500, _("Something went wrong"), _("Nothing was saved. Try again; if it keeps happening, tell the team that runs Reference Desk."))
