"""What SQLite itself needs to store a demo history: the floor under `demo load`'s speed.

    .venv/bin/python bench/write_floor.py bench-data/bench.sqlite3 [--orders 100000]

Reads the rows of the first N generated orders (with their carts, customers, references, search
terms and audit events) from a database that `demo load` filled, then writes them into a fresh
database with the same schema the way the loader does: ten batches, plain executemany (no
SQLAlchemy, no generation, no hashing, no foreign-key checks, no index rebuild at the end) and the
FTS5 trigram index fed per batch, and prints the CPU time per order. Whatever `demo load` adds on
top is generation and Python: its speed on SQLite cannot beat this figure.
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

TABLES = ("customers", "carts", "orders", "references", "search_terms", "audit_events")
FTS = {"references": "references_fts", "search_terms": "search_terms_fts"}
BATCHES = 10


def read_rows(source: sqlite3.Connection, orders: int) -> dict[str, list[tuple]]:
    """The first `orders` orders and a proportional share of every other table, in id order."""
    total = source.execute("SELECT count(*) FROM orders").fetchone()[0]
    share = min(1.0, orders / total) if total else 1.0
    rows = {}
    for table in TABLES:
        count = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        rows[table] = source.execute(f'SELECT * FROM "{table}" ORDER BY id LIMIT ?', (int(count * share),)).fetchall()
    return rows


def copy_schema(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """Tables, unique constraints and FTS tables as `demo load` has them during a big load (plain indexes dropped)."""
    for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%_fts_%' "
        "AND (type = 'table' OR (type = 'index' AND name NOT LIKE 'ix_%')) AND name NOT LIKE 'trigram_stats'"
    ):
        target.execute(sql)


def write(target: sqlite3.Connection, rows: dict[str, list[tuple]]) -> None:
    for batch in range(BATCHES):
        target.execute("BEGIN")
        for table in TABLES:
            part = rows[table][batch * len(rows[table]) // BATCHES:(batch + 1) * len(rows[table]) // BATCHES]
            if not part:
                continue
            placeholders = ",".join("?" * len(part[0]))
            target.executemany(f'INSERT INTO "{table}" VALUES ({placeholders})', part)
            if table in FTS:
                target.execute(f'INSERT INTO {FTS[table]}(rowid, key) SELECT id, key FROM "{table}" '
                               "WHERE id BETWEEN ? AND ? ORDER BY id", (part[0][0], part[-1][0]))
        target.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database", type=Path, help="a SQLite database filled by `flask demo load`")
    parser.add_argument("--orders", type=int, default=100_000)
    arguments = parser.parse_args()
    source = sqlite3.connect(f"file:{arguments.database}?mode=ro", uri=True)
    rows = read_rows(source, arguments.orders)
    orders = len(rows["orders"])
    with tempfile.TemporaryDirectory() as folder:
        target = sqlite3.connect(Path(folder) / "floor.sqlite3", isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "foreign_keys=OFF"):
            target.execute(f"PRAGMA {pragma}")
        copy_schema(source, target)
        wall, cpu = time.perf_counter(), time.process_time()
        write(target, rows)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{orders:,} orders, {sum(len(part) for part in rows.values()):,} rows: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU, {cpu / orders * 1e6:.0f} µs CPU per order, "
          f"at most {orders / cpu:,.0f} orders/s for SQLite's own work")


if __name__ == "__main__":
    main()
