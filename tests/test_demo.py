"""The demo generator: deterministic, resumable, true to Spryker's rules, audited and indexed."""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select
from werkzeug.security import generate_password_hash

from dashboard import audit, demo, models
from dashboard.models import (
    AuditEvent,
    Cart,
    CartState,
    Customer,
    Order,
    Reference,
    SearchTerm,
    User,
    db,
)
from dashboard.references import Kind, matching_key
from dashboard.tracking import identify_one

from .conftest import CARTS_FILE, _make_app

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
ORDERS = 300


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt is slow on purpose; these tests check who gets a password, not how it is hashed."""
    monkeypatch.setattr(models, "generate_password_hash",
                        functools.partial(generate_password_hash, method="pbkdf2:sha256:1"))


def _load(app: Flask, orders: int = ORDERS, seed: int = 42, now: datetime = NOW) -> demo.DemoReport:
    with app.app_context():
        return demo.load_demo(db.session, orders=orders, seed=seed, carts_file=CARTS_FILE, now=now)


@pytest.fixture
def instance(app: Flask, tmp_path: Path) -> Path:
    """Keep demo-users.txt out of the real instance folder."""
    app.instance_path = str(tmp_path / "instance")
    return tmp_path / "instance"


@pytest.fixture
def fresh_app(tmp_path: Path):
    """Further empty SQLite apps, for comparing runs."""
    apps = []

    def make(name: str) -> Flask:
        app = _make_app(f"sqlite:///{tmp_path / name}.sqlite3")
        app.instance_path = str(tmp_path / f"{name}-instance")
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def _references(app: Flask) -> list[tuple]:
    """Every reference with its owner's business key, independent of row ids."""
    with app.app_context():
        rows = db.session.execute(
            select(Order.order_reference, Cart.key, Reference.kind, Reference.value, Reference.active)
            .select_from(Reference).outerjoin(Order, Reference.order_id == Order.id)
            .outerjoin(Cart, Reference.cart_id == Cart.id)
        ).all()
    return sorted(tuple("" if value is None else value for value in row) for row in rows)


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in (Customer, Cart, Order, Reference, SearchTerm, AuditEvent, User)}


def test_the_same_seed_gives_the_same_history(fresh_app) -> None:
    first, second, other = fresh_app("first"), fresh_app("second"), fresh_app("other")
    _load(first), _load(second), _load(other, seed=7)
    assert _references(first) == _references(second)
    assert _references(first) != _references(other)
    assert len(_references(first)) > 3 * ORDERS


def test_a_second_run_adds_nothing(app: Flask, instance: Path) -> None:
    first = _load(app)
    before = _counts(app)
    second = _load(app)
    after = _counts(app)
    assert {**after, "audit_events": 0} == {**before, "audit_events": 0}
    assert after["audit_events"] == before["audit_events"] + second.carts.created + second.carts.updated
    assert first.carts.created == second.carts.unchanged == 78
    assert second.orders_before == second.orders_after == ORDERS
    assert any("nothing to add" in line for line in second.lines())


def test_a_larger_run_adds_exactly_the_missing_orders(fresh_app) -> None:
    grown, fresh = fresh_app("grown"), fresh_app("fresh")
    _load(grown, orders=ORDERS)  # stops inside a block: the next run resumes mid-block
    report = _load(grown, orders=1200, now=datetime(2027, 3, 1, tzinfo=timezone.utc))  # keeps the first anchor
    _load(fresh, orders=1200)
    assert report.orders_before == ORDERS and report.orders_after == 1200
    assert _references(grown) == _references(fresh)
    assert {k: v for k, v in _counts(grown).items() if k != "audit_events"} == \
        {k: v for k, v in _counts(fresh).items() if k != "audit_events"}
    with grown.app_context():
        assert audit.verify_chain(db.session).ok


def test_another_seed_does_not_mix_into_existing_history(app: Flask, instance: Path) -> None:
    _load(app)
    before = _counts(app)
    report = _load(app, orders=2 * ORDERS, seed=7)
    assert any("--seed 42" in line for line in report.lines())
    assert _counts(app)["orders"] == before["orders"]


def test_a_history_from_another_generator_version_is_not_extended(app: Flask, instance: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _load(app)
    monkeypatch.setattr(demo, "GENERATOR_VERSION", demo.GENERATOR_VERSION + 1)
    report = _load(app, orders=2 * ORDERS)
    assert any(f"version {demo.GENERATOR_VERSION - 1} of the generator" in line for line in report.lines())
    assert _counts(app)["orders"] == ORDERS
    assert _load(app).orders_after == ORDERS  # asking for no more than is there is no mix


def test_carts_follow_spryker_rules(app: Flask, instance: Path) -> None:
    _load(app, orders=1000)
    with app.app_context():
        session = db.session
        custom = {}  # (owner type, id) -> active custom value
        for reference in session.scalars(select(Reference).where(Reference.kind == Kind.CUSTOM, Reference.active)):
            owner = ("order", reference.order_id) if reference.order_id else ("cart", reference.cart_id)
            assert owner not in custom, "at most one active custom reference per record"
            custom[owner] = reference.value
        linked = session.execute(select(Order.id, Order.cart_id).where(Order.cart_id.is_not(None))).all()
        assert linked
        for order_id, cart_id in linked:
            cart = session.get(Cart, cart_id)
            assert cart.state == CartState.ORDERED
            assert custom.get(("order", order_id)) == custom.get(("cart", cart_id))
        states = Counter(session.scalars(select(Cart.state)))
        assert {CartState.OPEN, CartState.LOCKED, CartState.ORDERED, CartState.DELETED} <= set(states)
        reorders = session.scalars(select(Cart).where(Cart.name.like("Reorder %"))).all()
        assert reorders
        for cart in reorders:
            source = session.scalar(select(Order).where(Order.order_reference == cart.name.removeprefix("Reorder ")))
            assert custom[("cart", cart.id)] == custom[("order", source.id)]
        retired = session.scalars(select(Reference).where(Reference.active.is_(False))).all()
        assert retired and all(r.retired_at and r.retired_by == "demo-generator" for r in retired)
        orders = session.scalars(select(Order)).all()
        assert {order.store for order in orders} == {"DE", "AT", "US"}
        assert all(order.order_reference.startswith(f"{order.store}--") for order in orders)
        assert all(order.currency == {"DE": "EUR", "AT": "EUR", "US": "USD"}[order.store] for order in orders)
        assert all(order.placed_at.tzinfo is not None and order.placed_at <= NOW for order in orders)
        per_customer = Counter(order.customer_reference for order in orders)
        assert per_customer.most_common(1)[0][1] > 5
        kinds = {reference.kind for reference in session.scalars(select(Reference))}
        assert kinds == {kind.value for kind in Kind}
        assert any(not value.isascii() for value in custom.values())


def test_every_generated_reference_has_its_audit_event(app: Flask, instance: Path) -> None:
    report = _load(app)
    with app.app_context():
        session = db.session
        assert audit.verify_chain(session).ok
        imported: dict[tuple[str, str], dict] = {}
        for event in session.scalars(select(AuditEvent).where(AuditEvent.action == "record.imported",
                                                              AuditEvent.actor_name == "demo-generator")):
            if event.detail.startswith("{"):  # the carts file import writes "created"/"updated"
                imported[(event.record_type, event.record_key)] = json.loads(event.detail)
        for reference in session.scalars(select(Reference).where(Reference.created_by == "demo-generator")):
            owner = ("order", reference.order.order_reference) if reference.order_id else ("cart", reference.cart.key)
            detail = imported[owner]
            listed = detail["references"] if reference.active else detail["retired"]
            assert [reference.kind, reference.value] in listed
        records = sum(session.scalar(select(func.count()).select_from(model)) for model in (Order, Cart))
        assert len(imported) == records - report.carts.loaded


def test_records_are_findable(app: Flask, instance: Path) -> None:
    _load(app)
    with app.app_context():
        session = db.session
        terms = Counter(session.execute(select(SearchTerm.record_type, SearchTerm.field)).all())
        orders, carts, customers = (session.scalar(select(func.count()).select_from(model))
                                    for model in (Order, Cart, Customer))
        assert terms[("order", "order_reference")] == orders
        assert terms[("cart", "cart_key")] == terms[("cart", "cart_uuid")] == carts
        assert terms[("customer", "customer_reference")] == terms[("customer", "email")] == customers
        for reference in session.scalars(select(Reference).limit(200)):
            assert reference.key == matching_key(reference.value)
        connection = session.connection()
        for fts in ("references_fts", "search_terms_fts"):  # the index matches its table, row for row
            connection.exec_driver_sql(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")
            assert connection.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?", (f"{fts}_ai",)).scalar() == 1


def test_tracking_numbers_pass_the_carriers_check_digits(app: Flask, instance: Path) -> None:
    _load(app)
    with app.app_context():
        numbers = db.session.scalars(select(Reference.value).where(Reference.kind == Kind.TRACKING)).all()
    assert len(numbers) > ORDERS / 2
    couriers = Counter()
    for number in numbers:
        match = identify_one(number)
        assert match is not None and match.valid, number
        expected = "ups" if number.startswith("1Z") else "dhl" if len(number) == 10 else "dpd"
        assert match.courier_code == expected, (number, match)
        couriers[expected] += 1
    assert set(couriers) == {"dhl", "ups", "dpd"}


def test_demo_users_are_created_once(app: Flask, instance: Path) -> None:
    first = _load(app)
    users_file = instance / "demo-users.txt"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    lines = [line.split("\t") for line in users_file.read_text().splitlines() if not line.startswith("#")]
    with app.app_context():
        database = db.engine.url.render_as_string(hide_password=True)
    assert {(name, role, where) for name, role, _, where in lines} == {
        ("demo-agent", "agent", database), ("demo-supervisor", "supervisor", database), ("demo-admin", "admin", database)}
    with app.app_context():
        for name, _, password, _ in lines:
            assert db.session.scalar(select(User).where(User.username == name)).check_password(password)
            assert any(password in line for line in first.lines())
    second = _load(app)
    text = "\n".join(second.lines())
    assert all(password not in text for _, _, password, _ in lines)
    assert "Demo users exist" in text and str(users_file) in text
    assert users_file.read_text().count("demo-agent") == 1


def test_worker_processes_give_the_same_history(fresh_app, monkeypatch: pytest.MonkeyPatch) -> None:
    inline, workers = fresh_app("inline"), fresh_app("workers")
    monkeypatch.setattr(demo, "BATCH_ORDERS", demo.BLOCK)  # four batches, two for each worker
    _load(inline, orders=3500)
    monkeypatch.setattr(demo, "WORKER_MIN_ORDERS", 0)
    report = _load(workers, orders=3500)
    assert report.orders_after == 3500 and report.added["orders"] == 3500
    assert _references(inline) == _references(workers)
    assert _counts(inline) == _counts(workers)
    # Written in turns from two processes: the same records, details and a chain that holds.
    assert _imported_events(inline) == _imported_events(workers)
    for app in (inline, workers):
        with app.app_context():
            assert audit.verify_chain(db.session).ok


def test_each_batch_starts_at_the_ids_the_batches_before_it_used() -> None:
    spec = demo.GenerationSpec(seed=42, anchor=demo.default_anchor(NOW), start=300, end=4700, dialect="sqlite",
                               spryker_customers=("DE--1",), next_ids={table: 7 for table in demo.TABLES},
                               batch_orders=2 * demo.BLOCK)  # starts and ends inside a block
    batches = list(demo.generate_batches(spec))
    assert [batch.orders_end for batch in batches] == [1000, 3000, 4700]
    for before, after in zip(batches, batches[1:]):
        assert after.first_ids == {table: before.first_ids[table] + before.count(table) for table in demo.NUMBERED}
    for batch in batches:
        for table, rows in (("customers", batch.rows["customers"]), ("carts", batch.rows["carts"]),
                            ("orders", batch.rows["orders"])):
            assert [row[0] for row in rows] == list(range(batch.first_ids[table], batch.first_ids[table] + len(rows)))


def _imported_events(app: Flask) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            select(AuditEvent.actor_name, AuditEvent.record_type, AuditEvent.record_key, AuditEvent.detail)
            .where(AuditEvent.action == demo.IMPORTED_ACTION).order_by(AuditEvent.seq)).all()


def test_rows_move_to_free_ids_when_another_writer_took_them(app: Flask, instance: Path) -> None:
    _load(app, orders=0)  # the carts file's carts and customers already hold ids 1...
    with app.app_context():
        session = db.session
        writer = demo.make_writer(session)
        spec = demo.GenerationSpec(seed=42, anchor=demo.default_anchor(NOW), start=0, end=ORDERS, dialect="sqlite",
                                   spryker_customers=(), next_ids={table: 1 for table in demo.TABLES})
        for batch in demo.generate_batches(spec):
            writer.write(batch, batch.events)
            session.commit()
        writer.finish()
        for order in session.scalars(select(Order).where(Order.cart_id.is_not(None))):
            assert order.cart.state == CartState.ORDERED and int(order.cart.key.split("-")[1]) >= 1000
        for term in session.scalars(select(SearchTerm).where(SearchTerm.record_type == "order")):
            assert session.get(Order, term.record_id).order_reference == term.value
        assert audit.verify_chain(session).ok


def _index_names(app: Flask) -> set[str]:
    with app.app_context():
        inspector = inspect(db.session.connection())
        names = {index["name"] for table in (*demo.TABLES, "audit_events") for index in inspector.get_indexes(table)}
        db.session.rollback()
    return names


def test_a_big_load_rebuilds_the_indexes_it_dropped(fresh_app, monkeypatch: pytest.MonkeyPatch) -> None:
    small, big = fresh_app("small"), fresh_app("big")
    expected = _index_names(small)
    assert {index.name for index in demo.bulk_indexes()} <= expected
    _load(small)
    monkeypatch.setattr(demo, "BIG_LOAD_ORDERS", 1)
    _load(big)
    assert _index_names(big) == expected
    assert _references(big) == _references(small)
    with big.app_context():  # as a big load that died would leave it
        db.session.connection().exec_driver_sql("DROP INDEX ix_references_key")
        db.session.commit()
    _load(big)
    assert _index_names(big) == expected


@pytest.mark.postgres
def test_postgres_load_is_complete_and_idempotent(postgres_app: Flask, tmp_path: Path) -> None:
    postgres_app.instance_path = str(tmp_path)
    _load(postgres_app)
    before = _counts(postgres_app)
    _load(postgres_app)
    after = _counts(postgres_app)
    assert before["orders"] == ORDERS and before["references"] > 3 * ORDERS
    assert after["references"] == before["references"] and after["carts"] == before["carts"]
    with postgres_app.app_context():
        session = db.session
        assert audit.verify_chain(session).ok
        # Later inserts through the ORM get ids after ours: the sequences were moved on.
        customer = Customer(customer_reference="DE--999999")
        session.add(customer)
        session.commit()
        assert customer.id == before["customers"] + 1
        linked = session.execute(select(Order.cart_id, Cart.state).join(Cart, Order.cart_id == Cart.id)).all()
        assert linked and all(state == CartState.ORDERED for _, state in linked)


def _postgres_keys_and_indexes(app: Flask) -> tuple[int, int]:
    with app.app_context():
        connection = db.session.connection()
        keys = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        ).scalar_one()
        indexes = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexdef LIKE '%%gin_trgm_ops%%'"
        ).scalar_one()
        db.session.rollback()
    return keys, indexes


@pytest.mark.postgres
def test_a_big_postgres_load_puts_back_what_it_dropped(postgres_app: Flask, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_app.instance_path = str(tmp_path)
    expected = _postgres_keys_and_indexes(postgres_app), _index_names(postgres_app)
    assert expected[0][0] >= 3 and expected[0][1] == 2
    monkeypatch.setattr(demo, "BIG_LOAD_ORDERS", 1)
    _load(postgres_app)
    assert (_postgres_keys_and_indexes(postgres_app), _index_names(postgres_app)) == expected
    with postgres_app.app_context():  # as a big load that died would leave them
        connection = db.session.connection()
        connection.exec_driver_sql('ALTER TABLE "references" DROP CONSTRAINT references_order_id_fkey')
        connection.exec_driver_sql("DROP INDEX ix_references_key_trgm")
        connection.exec_driver_sql("DROP INDEX ix_references_key")
        db.session.commit()
    _load(postgres_app)
    assert (_postgres_keys_and_indexes(postgres_app), _index_names(postgres_app)) == expected


@pytest.mark.postgres
def test_worker_processes_write_into_the_apps_own_postgres_schema(postgres_app: Flask, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_app.instance_path = str(tmp_path)
    monkeypatch.setattr(demo, "BATCH_ORDERS", demo.BLOCK)
    monkeypatch.setattr(demo, "WORKER_MIN_ORDERS", 0)
    report = _load(postgres_app, orders=2500)
    assert report.orders_after == 2500
    with postgres_app.app_context():  # the app's schema is a test's own, not the public one
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2500
        assert audit.verify_chain(db.session).ok


def test_a_failing_worker_stops_the_load_and_says_why(tmp_path: Path) -> None:
    spec = demo.GenerationSpec(seed=42, anchor=demo.default_anchor(NOW), start=0, end=3 * demo.BLOCK,
                               dialect="sqlite", spryker_customers=(), next_ids={})  # no ids: a KeyError there
    with pytest.raises(RuntimeError, match=r"a demo worker process failed:(.|\n)*KeyError"):
        list(demo.load_in_workers(demo.Database(f"sqlite:///{tmp_path / 'failing.sqlite3'}", {}), spec, None,
                                  lambda: False))


def test_worker_processes_ignore_ctrl_c_from_their_start_and_the_parent_keeps_its_handler() -> None:
    # A Ctrl-C while a worker still imports once killed it with a KeyboardInterrupt traceback.
    ask = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"]
    before = signal.getsignal(signal.SIGINT)
    with demo._started_ignoring_ctrl_c():
        started_inside = subprocess.run(ask, capture_output=True, text=True, check=True).stdout.strip()
    assert signal.getsignal(signal.SIGINT) is before
    started_outside = subprocess.run(ask, capture_output=True, text=True, check=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)).stdout.strip()
    assert (started_inside, started_outside) == ("True", "False")


def test_ctrl_c_is_taken_between_batches_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    with demo.interrupt_deferred() as interrupted:
        assert not interrupted()
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt here without the deferral
        assert interrupted()
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupted_load_stops_between_batches_and_the_next_run_completes_it(
        app: Flask, instance: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = demo.BLOCK + 500  # two batches: the first is one block
    checks, armed = itertools.count(), True

    @contextlib.contextmanager
    def ctrl_c_during_the_first_batch():
        yield lambda: armed and next(checks) >= 1

    monkeypatch.setattr(demo, "interrupt_deferred", ctrl_c_during_the_first_batch)
    first = _load(app, orders=wanted)
    assert first.interrupted and "Stopped by Ctrl-C at 1,000 of 1,500" in "\n".join(first.lines())
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == demo.BLOCK == first.orders_after
        assert audit.verify_chain(db.session).ok
    armed = False
    second = _load(app, orders=wanted)
    assert not second.interrupted and second.orders_after == wanted


def test_an_interrupted_load_in_workers_keeps_a_prefix_the_next_run_completes(
        fresh_app, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted, fresh = fresh_app("interrupted"), fresh_app("fresh")
    monkeypatch.setattr(demo, "BATCH_ORDERS", demo.BLOCK)
    monkeypatch.setattr(demo, "WORKER_MIN_ORDERS", 0)
    written, armed = [], True
    real_count = demo._count

    def count_and_press_ctrl_c(report: demo.DemoReport, batch: demo.Written) -> None:
        real_count(report, batch)
        written.append(batch.index)

    @contextlib.contextmanager
    def ctrl_c_after_the_first_batch():
        yield lambda: armed and bool(written)

    monkeypatch.setattr(demo, "_count", count_and_press_ctrl_c)
    monkeypatch.setattr(demo, "interrupt_deferred", ctrl_c_after_the_first_batch)
    first = _load(interrupted, orders=8000)
    assert first.interrupted and first.orders_after < 8000
    assert sorted(written) == list(range(len(written)))  # the batches written are the first ones
    with interrupted.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == first.orders_after
        assert demo.orders_present(db.session) == first.orders_after
        assert audit.verify_chain(db.session).ok
    armed = False
    second = _load(interrupted, orders=8000)
    assert not second.interrupted and second.orders_after == 8000
    _load(fresh, orders=8000)
    assert _references(interrupted) == _references(fresh)


def test_loading_another_database_keeps_the_first_ones_demo_passwords(fresh_app, tmp_path: Path) -> None:
    first, other = fresh_app("first"), fresh_app("other")
    for app in (first, other):
        app.instance_path = str(tmp_path / "instance")  # one instance folder, two databases
        _load(app, orders=0)
    lines = [line.split("\t") for line in (tmp_path / "instance" / "demo-users.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert len(lines) == 6 and len({where for *_, where in lines}) == 2
    for app in (first, other):
        with app.app_context():
            database = db.engine.url.render_as_string(hide_password=True)
            for name, _, password, where in lines:
                if where == database:
                    assert db.session.scalar(select(User).where(User.username == name)).check_password(password)
