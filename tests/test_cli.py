import json
import uuid

import pytest
from sqlalchemy import func, make_url, select, text

from dashboard import create_app
from dashboard.models import AuditEvent, Role, User, db

from .conftest import POSTGRES_URL


def test_users_create_reads_password_from_stdin(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "maria", "--role", "supervisor"],
                                          input="s3cret-password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "maria"))
        assert user.role == "supervisor" and user.check_password("s3cret-password")
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.created")).record_key == "maria"


def test_users_create_refuses_unknown_role_and_existing_name(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "bob", "--role", "wizard"], input="s3cret-password\n")
    assert result.exit_code != 0 and "wizard" in result.output
    result = runner.invoke(args=["users", "create", "agent", "--role", "agent"], input="s3cret-password\n")
    assert result.exit_code != 0 and "already exists" in result.output


@pytest.mark.parametrize("name", ["AGENT", "Agent", " eve<script> ", "two words", ""])
def test_users_create_refuses_another_case_of_a_name_and_odd_characters(app, name):
    result = app.test_cli_runner().invoke(args=["users", "create", name, "--role", "agent"], input="s3cret-password\n")
    assert result.exit_code != 0
    assert "already exists" in result.output or "letters, digits" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == len(Role)  # conftest's users only


def test_users_create_refuses_a_short_password(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "eve", "--role", "agent"], input="short\n")
    assert result.exit_code != 0 and "at least 8" in result.output


def test_references_identify_prints_one_json_line_per_value(app):
    result = app.test_cli_runner().invoke(args=["references", "identify", "1Z5R89390357567127", "PO-123/45"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2
    assert lines[0]["courier_code"] == "ups" and lines[0]["valid"] is True and lines[0]["tracking_url"]
    assert lines[1]["key"] == "po12345" and lines[1]["tracking"] is False


def test_audit_verify_on_a_database_without_tables_says_what_to_do(tmp_path):
    bare = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'bare.sqlite3'}", "SECRET_KEY": "x"})
    result = bare.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code != 0
    assert "no audit log" in result.output and "db init" in result.output


def test_db_init_puts_back_an_index_a_killed_bulk_load_left_dropped(both_app):
    with both_app.app_context():
        db.session.execute(db.text("DROP INDEX ix_references_key"))
        db.session.commit()
        assert "ix_references_key" not in {index["name"] for index in db.inspect(db.engine).get_indexes("references")}
        result = both_app.test_cli_runner().invoke(args=["db", "init"])
        assert result.exit_code == 0, result.output
        db.session.remove()
        assert "ix_references_key" in {index["name"] for index in db.inspect(db.engine).get_indexes("references")}


def test_a_database_that_cannot_be_opened_is_one_line_not_a_traceback(tmp_path):
    unreachable = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-folder' / 'x.sqlite3'}",
                              "SECRET_KEY": "x"})
    for command in (["audit", "verify"], ["db", "init"], ["users", "create", "bob", "--role", "agent"]):
        result = unreachable.test_cli_runner().invoke(args=command, input="a-long-password\n")
        assert result.exit_code == 1, (command, result.output)
        assert "unable to open database file" in result.output and "no-such-folder" in result.output
        assert "Traceback" not in result.output


def test_db_init_as_a_role_without_rights_says_which_role_to_use(postgres_app):
    role = f"refdesk_no_rights_{uuid.uuid4().hex[:8]}"
    with postgres_app.app_context():
        schema = postgres_app.config["DATABASE_SCHEMA"]
        with db.engine.begin() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        url = make_url(POSTGRES_URL).set(username=role).render_as_string(hide_password=False)
        weak = create_app({"DATABASE_URL": url, "DATABASE_SCHEMA": schema, "SECRET_KEY": "x"})
        result = weak.test_cli_runner().invoke(args=["db", "init"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "permission denied" in result.output and "role that owns the tables" in result.output
        with weak.app_context():
            db.engine.dispose()
    finally:
        with postgres_app.app_context(), db.engine.begin() as connection:
            connection.execute(text(f'DROP ROLE "{role}"'))
