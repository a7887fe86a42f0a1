"""Command line, through `flask --app wsgi ...`."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy import URL, func, inspect, make_url
from sqlalchemy.exc import DBAPIError

from . import PROJECT_ROOT, audit
from .models import AuditEvent, Role, User, db
from .schema import create_schema, refresh_statistics

USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")
DEFAULT_CARTS_FILE = PROJECT_ROOT.parent / "shared" / "data" / "spryker" / "multi_cart.csv"



class CommandGroup(AppGroup):
    """A database that cannot be reached, opened or written by this role ends a command with one
    line saying so (exit 1), not a page of traceback; the database's own words are kept."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DBAPIError as error:
            # The command's app context has ended by now: the URL comes from the app's settings.
            uri = ctx.ensure_object(ScriptInfo).load_app().config["SQLALCHEMY_DATABASE_URI"]
            raise click.ClickException(database_problem(error, make_url(uri))) from None


def database_problem(error: DBAPIError, url: URL) -> str:
    lines = str(error.orig).strip().splitlines()
    said = lines[0] if lines else type(error.orig).__name__
    where = url.render_as_string(hide_password=True)
    if "permission denied" in said or "must be owner" in said:
        return (f"{where}: {said}. Run db init, db analyze and demo load as the role that owns the "
                "tables (README, production).")
    return f"{where}: {said}"


db_cli = CommandGroup("db", help="Database schema.")
demo_cli = CommandGroup("demo", help="Demo data.")
users_cli = CommandGroup("users", help="User accounts.")
audit_cli = CommandGroup("audit", help="The audit log.")
references_cli = CommandGroup("references", help="Reference values.")


@db_cli.command("init")
def db_init() -> None:
    """Create the tables, indexes and audit guards (safe to run again)."""
    create_schema(db.engine)
    click.echo(f"schema ready on {db.engine.url.render_as_string(hide_password=True)}")


@db_cli.command("analyze")
def db_analyze() -> None:
    """Refresh planner statistics and trigram counts (after big imports; cheap to run nightly)."""
    refresh_statistics(db.engine)
    click.echo("statistics refreshed")


@demo_cli.command("load")
@click.option("--orders", default=5000, show_default=True, type=click.IntRange(min=0))
@click.option("--carts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--seed", default=42, show_default=True)
def demo_load(orders: int, carts_file: Path | None, seed: int) -> None:
    """Import the Spryker carts, then generate customers, carts and ORDERS orders from a fixed seed."""
    from .demo import load_demo

    create_schema(db.engine)
    report = load_demo(db.session, orders=orders, seed=seed, carts_file=carts_file or DEFAULT_CARTS_FILE)
    db.session.commit()
    refresh_statistics(db.engine)
    for line in report.lines():
        click.echo(line)
    if report.interrupted:
        raise click.exceptions.Exit(130)  # what a shell reports for Ctrl-C


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
def users_create(username: str, role: str) -> None:
    """Create a user; the password is read from standard input (so scripts can pipe it)."""
    username = username.strip()
    if not USERNAME.fullmatch(username):
        raise click.ClickException(
            "The user name must be 1 to 100 letters, digits, dots, dashes, underscores or @.")
    # "bob" and "Bob" would be two accounts an auditor reads as one person.
    existing = db.session.scalar(db.select(User.username).where(func.lower(User.username) == username.lower()))
    if existing:
        raise click.ClickException(f"A user named {existing!r} already exists.")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("The password must have at least 8 characters.")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    audit.append_event(db.session, audit.EventData(
        action="user.created", actor=audit.Actor("system", "cli", None), record_type="user",
        record_key=username, new_value=role,
    ))
    db.session.commit()
    click.echo(f"created {role} {username}")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 naming the first broken event."""
    if not inspect(db.engine).has_table(AuditEvent.__tablename__):
        raise click.ClickException("This database has no audit log: run `flask --app wsgi db init` first.")
    result = audit.verify_chain(db.session)
    if result.ok:
        click.echo(f"audit log intact: {result.checked} events, last hash {result.last_hash}")
        return
    click.echo(f"audit log BROKEN at event {result.seq}: {result.problem}", err=True)
    sys.exit(1)


@references_cli.command("identify")
@click.argument("values", nargs=-1, required=True)
def references_identify(values: tuple[str, ...]) -> None:
    """Print one JSON line per value: its matching key and the carrier it looks like."""
    from .references import matching_key
    from .tracking import identify

    for value in values:
        matches = identify(value)
        best = matches[0] if matches else None
        click.echo(json.dumps({
            "value": value,
            "key": matching_key(value),
            "tracking": best is not None,
            "valid": bool(best and best.valid),
            "courier": best.courier if best else None,
            "courier_code": best.courier_code if best else None,
            "service": best.service if best else None,
            "tracking_url": best.tracking_url if best else None,
            "matches": [asdict(match) for match in matches],
        }, ensure_ascii=False))


def init_app(app: Flask) -> None:
    for group in (db_cli, demo_cli, users_cli, audit_cli, references_cli):
        app.cli.add_command(group)
