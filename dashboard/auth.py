"""Log in and out, who the current actor is, and the role check every route goes through."""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.exc import DBAPIError
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .forms import LoginForm
from .models import ROLE_RANK, Role, User, db

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class SignedInUser(UserMixin):
    """Who the session belongs to, as the database says on this request: every request reads the
    user's row, so a changed role applies at once and a disabled or deleted user is logged out.

    Three columns into a plain record: the ORM's User object costs several times more per request."""

    id: int
    username: str
    role: str

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[role]


_ACTIVE_USER = select(User.id, User.username, User.role).where(User.id == bindparam("user_id"), User.active.is_(True))

T = TypeVar("T")


def once_more_on_dead_connection(first_statement: Callable[[], T]) -> T:
    """Run a request's first statement; if its pooled connection had died (the database restarted,
    an idle connection was cut), run it once more on a new one.

    There is no pool_pre_ping (a round trip per request): instead each kind of request that can
    start with a dead connection (a logged-in request's user look-up, a login, /healthz) runs its
    first statement through here. The failed statement invalidates the pool, so one retry is
    enough; any other error, or a second failure, is raised.
    """
    try:
        return first_statement()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        db.session.rollback()
        return first_statement()


@login_manager.user_loader
def _load_user(user_id: str) -> SignedInUser | None:
    if not user_id.isdigit():  # not a session this app made
        return None
    row = once_more_on_dead_connection(lambda: db.session.execute(_ACTIVE_USER, {"user_id": int(user_id)}).first())
    return SignedInUser(*row) if row else None


@login_manager.unauthorized_handler
def _unauthorized():
    """Not logged in (or the session ended): back to login, then back here.

    For htmx requests a plain redirect would put the login page inside a fragment, so htmx is
    told to load the login page as a whole page instead.
    """
    target = url_for("auth.login", next=_return_path())
    if request.headers.get("HX-Request"):
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _return_path() -> str:
    """Where to come back to: the page the person was on, never the fragment or another host."""
    if request.headers.get("HX-Request") and request.headers.get("HX-Current-URL"):
        return safe_next(request.headers["HX-Current-URL"]) or url_for("search.search")
    if request.method == "GET":
        return request.full_path.rstrip("?")
    return page_of(safe_next(request.referrer) or safe_next(request.path)) or url_for("search.search")


EDIT_URL = re.compile(r"^(/(?:orders|carts)/[^/?#]+)/(?:custom-reference|references)(?:[/?#].*)?$")


def page_of(path: str | None) -> str | None:
    """The page a path shows; an edit form's POST-only URL (the address after a refused post without
    JavaScript) maps to its record page, so logging in again never lands on 405."""
    if not path:
        return None
    match = EDIT_URL.match(path)
    return match.group(1) if match else path


def safe_next(target: str | None) -> str | None:
    """Only a path on this site; an absolute URL to elsewhere is an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme and parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def client_address() -> str | None:
    return request.remote_addr


def current_actor() -> audit.Actor:
    if current_user.is_authenticated:
        return audit.Actor("user", current_user.username, current_user.role)
    return audit.Actor("anonymous", "anonymous", None)


def event(action: str, **fields: Any) -> audit.EventData:
    """An audit event for this request: actor, request id and client address filled in."""
    fields.setdefault("actor", current_actor())
    return audit.EventData(
        action=action,
        request_id=g.get("request_id"),
        client_address=client_address(),
        **fields,
    )


def record_denied(reason: str, **record: str) -> None:
    """auth.denied is written in its own transaction: the refused request writes nothing else."""
    db.session.rollback()
    audit.append_event(
        db.session,
        event("auth.denied", reason=reason, detail=f"{request.method} {request.path}", **record),
    )
    db.session.commit()


def deny(reason: str):
    record_denied(reason)
    abort(403, description=reason)


def require_role(role: Role) -> Callable:
    """Log-in and role check on the server, for pages, fragments and form posts alike."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.has_role(role):
                deny(_("This needs the %(role)s role.", role=role.value))
            return view(*args, **kwargs)

        return wrapped

    return decorator


# Names are unique case-insensitively (`users create`), so "Alice" logs in as alice. Accounts made
# before that rule may differ only in case: the one spelled exactly as typed comes first.
_USER_BY_NAME = (
    select(User)
    .where(func.lower(User.username) == func.lower(bindparam("name", type_=String)))
    .order_by(User.username != bindparam("name", type_=String), User.id)
    .limit(1)
)


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    next_path = safe_next(request.args.get("next")) or url_for("search.search")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_path)
    status = 200
    if form.validate_on_submit():
        username = (form.username.data or "").strip()  # as `users create` stores it
        user = once_more_on_dead_connection(lambda: db.session.scalar(_USER_BY_NAME, {"name": username}))
        if user is None:
            # The same scrypt work as a real user's check: a quick "no" would tell which names exist.
            check_password_hash(_unknown_user_hash(), form.password.data or "")
        if user is not None and user.active and user.check_password(form.password.data):
            signed_in = SignedInUser(user.id, user.username, user.role)
            # The event is committed before the session says "logged in": if writing it fails,
            # the request ends in an error page and nobody is logged in without a trace.
            audit.append_event(
                db.session, event("auth.login", actor=audit.Actor("user", signed_in.username, signed_in.role)))
            db.session.commit()
            session.clear()
            login_user(signed_in)
            session.permanent = True
            return redirect(next_path)
        audit.append_event(
            db.session,
            event(
                "auth.login_failed",
                actor=audit.Actor("anonymous", (form.username.data or "")[:100], None),
            ),
        )
        db.session.commit()
        flash(_("Unknown user name or wrong password."), "error")
        status = 401
    elif request.method == "POST":
        status = 422
    return _login_page(form, next_path, status)


def expired_login_form():
    """A login post whose CSRF token is missing or no longer matches the session (the session
    cookie expired or was cleared while the page stayed open): the login page again, with a fresh
    token and the name as typed. Redirecting to the login page would send it to itself as `next`."""
    flash(_("Your session expired, please log in again."), "warning")
    next_path = safe_next(request.args.get("next")) or url_for("search.search")
    return _login_page(LoginForm(), next_path, 400)


def _login_page(form: LoginForm, next_path: str, status: int):
    return render_template("pages/login.html", form=form, next_path=next_path), status


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(24))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


# Answers that never use the session.
SESSIONLESS_ENDPOINTS = frozenset({"static", "records.healthz"})


class SessionRefreshedByPages(SecureCookieSessionInterface):
    """Sessions are permanent and each request refreshes the cookie (the idle timeout), except
    answers that never use the session: static files and /healthz. A refreshed cookie on a
    stylesheet or icon that arrived after a logout or an expiry (the browser had dropped the
    cookie) put the old session back. (Flask marks every session as read, as Flask-Login's
    after-request hook looks at it, so `session.accessed` cannot tell these apart.)"""

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        if request.endpoint in SESSIONLESS_ENDPOINTS and not session.modified:
            return False
        return super().should_set_cookie(app, session)


def init_app(app: Flask) -> None:
    app.session_interface = SessionRefreshedByPages()
    login_manager.init_app(app)
    app.register_blueprint(bp)
