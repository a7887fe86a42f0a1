"""Reference Desk: find Spryker orders and carts by any of their references."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.pool import NullPool
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config, make_instance_folder
from .models import db
from .schema import configure_sqlite

PROJECT_ROOT = Path(__file__).resolve().parent.parent

csrf = CSRFProtect()
babel = Babel()


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(load_config(Path(app.instance_path), overrides))
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])  # type: ignore[method-assign]

    _init_database(app)
    csrf.init_app(app)
    babel.init_app(app)

    from . import auth, cli, errors, htmx, labels
    from .views import audit as audit_views
    from .views import edit, records, search

    auth.init_app(app)
    htmx.init_app(app)
    errors.init_app(app)
    labels.init_app(app)
    cli.init_app(app)
    app.register_blueprint(search.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(edit.bp)
    app.register_blueprint(audit_views.bp)
    _register_request_hooks(app)
    return app


def _init_database(app: Flask) -> None:
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    options: dict[str, Any]
    if uri.startswith("sqlite"):
        make_instance_folder(Path(app.instance_path))
        options = {"connect_args": {"timeout": 30}}
    else:
        # Every connection:
        # - jit=off: the search statement's row counts are unknown when it is planned (its reads'
        #   limits are computed), the guessed cost passed jit_above_cost, and compiling took 100 ms
        #   for a statement that runs in 1 ms. Nothing this app runs gains from JIT.
        # - plan_cache_mode=force_generic_plan: psycopg prepares a statement the fifth time a
        #   connection runs it; planning the search statement takes 1.5-2 ms, and PostgreSQL kept
        #   planning it anew for each search. Every statement this app repeats is an index look-up
        #   whose plan does not depend on the values (search_sql pins its joins to look-ups).
        # No pool_pre_ping: it cost a round trip per request. A connection that died (a database
        # restart) fails its first statement; the user look-up that starts every logged-in request
        # then retries once on a new connection (auth._load_user), and pool_recycle retires
        # connections before a server's or firewall's idle timeout can.
        server_settings = ["-cjit=off", "-cplan_cache_mode=force_generic_plan"]
        options = {"pool_recycle": 1800}
        if app.config.get("DATABASE_SCHEMA"):  # tests give each PostgreSQL test its own schema
            server_settings.append(f"-csearch_path={app.config['DATABASE_SCHEMA']},public")
            options["poolclass"] = NullPool
        options["connect_args"] = {"options": " ".join(server_settings)}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def security_headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if "started" in g:  # the server's own time, for browser dev tools, operators and the benchmark
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
