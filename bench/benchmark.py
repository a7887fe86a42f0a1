"""Search benchmark: our tiers against the plain LIKE '%...%' scan, on SQLite and PostgreSQL.

    .venv/bin/python bench/benchmark.py --orders 1000000            # both databases
    .venv/bin/python bench/benchmark.py --orders 100000 --only sqlite --queries 100

For each database it builds the demo data once (`flask demo load`, reused when present), reads its
tables and indexes into the OS cache (a server that has been answering for a while), then runs a
fixed, seeded mix of queries per tier (exact, prefix, contains, similar, not found; 3 to 30
characters) and prints the server time of the search results region (the whole request, rendering
included) as median, 95th and 99th percentile; the LIKE scan over the same fields for the same
queries, side by side, with the ratio of medians; index bytes per order; and the requests per
second that gunicorn with two workers serves on loopback. Nothing here is a test: it prints figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import create_app  # noqa: E402
from dashboard.models import Role, User, db  # noqa: E402
from dashboard.references import matching_key  # noqa: E402
from dashboard.search import one_edit_variants  # noqa: E402

BENCH_USER, BENCH_PASSWORD = "bench-agent", "bench-password-1"
TIERS = ("exact", "prefix", "contains", "similar", "not found")
TARGETS = {"median_ms": 5.0, "p95_ms": 25.0, "ratio": 20.0, "index_bytes_per_order": 1024}

# The plain back-office scan: the same fields, each with LIKE '%text%' as typed (case-insensitive).
LIKE_SCAN = {
    "sqlite": """
        SELECT 'order', o.id FROM orders o WHERE o.order_reference LIKE :p OR o.email LIKE :p OR o.customer_reference LIKE :p
        UNION ALL SELECT 'cart', c.id FROM carts c WHERE c.key LIKE :p OR c.uuid LIKE :p OR c.name LIKE :p OR c.customer_reference LIKE :p
        UNION ALL SELECT 'ref', r.id FROM "references" r WHERE r.value LIKE :p
        LIMIT 200""",
    "postgresql": """
        SELECT 'order', o.id FROM orders o WHERE o.order_reference ILIKE :p OR o.email ILIKE :p OR o.customer_reference ILIKE :p
        UNION ALL SELECT 'cart', c.id FROM carts c WHERE c.key ILIKE :p OR c.uuid ILIKE :p OR c.name ILIKE :p OR c.customer_reference ILIKE :p
        UNION ALL SELECT 'ref', r.id FROM "references" r WHERE r.value ILIKE :p
        LIMIT 200""",
}


@dataclass
class Figures:
    database: str
    orders: int = 0
    ours_ms: dict[str, list[float]] = field(default_factory=dict)  # whole request, rendering included
    query_ms: list[float] = field(default_factory=list)  # search() alone: the database work and ranking
    ours_on_like_subset_ms: list[float] = field(default_factory=list)  # the same queries the LIKE scan ran
    like_ms: list[float] = field(default_factory=list)
    index_bytes: int = 0
    load_seconds: float | None = None
    requests_per_second: float | None = None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def flask_env(url: str) -> dict[str, str]:
    return {**os.environ, "DASHBOARD_DATABASE_URL": url, "FLASK_APP": "wsgi"}


def ensure_data(url: str, orders: int) -> float | None:
    """Build the demo data when the database holds fewer orders; returns the load time if it ran."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            have = connection.execute(text("SELECT count(*) FROM orders")).scalar_one()
    except Exception:  # noqa: BLE001 - no schema yet
        have = 0
    finally:
        engine.dispose()
    if have >= orders:
        return None
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/flask"), "demo", "load", "--orders", str(orders)],
                   env=flask_env(url), cwd=ROOT, check=True)
    return time.perf_counter() - started


def make_queries(app, count: int, seed: int) -> dict[str, list[str]]:
    """A fixed mix per tier, drawn with a seed from the stored values (the same on both databases)."""
    rng = random.Random(seed)
    with app.app_context():
        top = db.session.execute(text('SELECT max(id) FROM "references"')).scalar_one()
        values: list[str] = []
        while len(values) < count * 4:
            ids = [rng.randint(1, top) for _ in range(200)]
            rows = db.session.execute(text('SELECT value FROM "references" WHERE id IN (%s) ORDER BY id'
                                           % ",".join(map(str, ids)))).scalars().all()
            values.extend(value for value in rows if len(matching_key(value)) >= 6)
    queries: dict[str, list[str]] = {tier: [] for tier in TIERS}
    for value in values[:count]:
        queries["exact"].append(value.lower() if rng.random() < 0.5 else value)
    for value in values[count:2 * count]:
        key = matching_key(value)
        queries["prefix"].append(key[: rng.randint(3, max(3, len(key) - 1))])
    for value in values[2 * count:3 * count]:
        key = matching_key(value)
        length = rng.randint(3, min(10, len(key) - 1))
        start = rng.randint(1, len(key) - length)
        queries["contains"].append(key[start:start + length])
    for value in values[3 * count:4 * count]:
        queries["similar"].append(rng.choice(sorted(one_edit_variants(matching_key(value)))))
    alphabet = "qxzjkvw"
    for _ in range(count):
        length = rng.randint(3, 30)
        queries["not found"].append("".join(rng.choice(alphabet) for _ in range(length)))
    return queries


def server_ms(response) -> float:
    """The app's own time for the request (its Server-Timing header): login check, search, rendering."""
    return float(response.headers["Server-Timing"].split("dur=")[1])


def warm_database(app) -> None:
    """Read the search tables and indexes into memory first, as on a server that has been answering
    for a while (a million orders take ~2 GB): otherwise the first tier timed pays for cold disk reads
    that no later tier does, and the figures measure the order of the tiers."""
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            path = Path(engine.url.database)
            read = 0
            for file in (path, path.with_name(path.name + "-wal")):
                if file.exists():
                    with file.open("rb") as stream:
                        while chunk := stream.read(1 << 20):
                            read += len(chunk)
            print(f"sqlite: read {read / 2**20:,.0f} MiB of database files into the OS cache", file=sys.stderr)
            return
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            relations = connection.exec_driver_sql(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') AND c.relname NOT LIKE 'audit%%'"
            ).scalars().all()
            pages = sum(connection.exec_driver_sql("SELECT pg_prewarm(%(relation)s, 'read')",
                                                   {"relation": relation}).scalar_one() for relation in relations)
        print(f"postgresql: read {pages * 8 / 1024:,.0f} MiB of tables and indexes into the OS cache", file=sys.stderr)


def time_ours(app, queries: dict[str, list[str]]) -> dict[str, list[float]]:
    """Server time of the results region: the whole request through Flask, rendering included."""
    client = app.test_client()
    login(client)
    headers = {"HX-Request": "true", "HX-Target": "results"}
    timings: dict[str, list[float]] = {}
    for tier, items in queries.items():
        for query in items[:5]:  # warm caches the same way for both contenders
            client.get("/search", query_string={"q": query}, headers=headers)
        timings[tier] = []
        for query in items:
            response = client.get("/search", query_string={"q": query}, headers=headers)
            assert response.status_code == 200, response.status_code
            timings[tier].append(server_ms(response))
    return timings


def time_search_function(app, queries: dict[str, list[str]]) -> list[float]:
    from dashboard.search import search

    timings = []
    with app.app_context():
        for query in [query for items in queries.values() for query in items]:
            started = time.perf_counter()
            search(db.session, query)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def like_subset(queries: dict[str, list[str]], per_tier: int) -> dict[str, list[str]]:
    """The first queries of each tier: a LIKE scan takes seconds at a million orders."""
    return {tier: items[:per_tier] for tier, items in queries.items()}


def time_like(app, queries: dict[str, list[str]]) -> list[float]:
    timings = []
    with app.app_context():
        sql = text(LIKE_SCAN[db.engine.dialect.name])
        flat = [query for items in queries.values() for query in items]
        for query in flat[:2]:
            db.session.execute(sql, {"p": f"%{query}%"}).all()
        for query in flat:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            started = time.perf_counter()
            db.session.execute(sql, {"p": pattern}).all()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": BENCH_USER, "password": BENCH_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, "bench user could not log in"


def ensure_bench_user(app) -> None:
    with app.app_context():
        if db.session.scalar(db.select(User).where(User.username == BENCH_USER)) is None:
            user = User(username=BENCH_USER, role=Role.AGENT)
            user.set_password(BENCH_PASSWORD)
            db.session.add(user)
            db.session.commit()


SQLITE_INDEX_OBJECTS = ("ix_references_key", "search_terms", "ix_search_terms_key", "ix_search_terms_record")
POSTGRES_INDEX_OBJECTS = ("ix_references_key", "ix_references_key_trgm", "search_terms",
                          "ix_search_terms_key", "ix_search_terms_key_trgm", "ix_search_terms_record")


def index_bytes(app) -> int:
    """Bytes of every structure that exists only for search: key B-trees, trigram indexes, search_terms."""
    with app.app_context():
        connection = db.session.connection()
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").all()
            return sum(size for name, size in rows
                       if name in SQLITE_INDEX_OBJECTS or name.startswith(("references_fts", "search_terms_fts")))
        return sum(connection.exec_driver_sql(f"SELECT pg_relation_size('\"{name}\"')").scalar_one()
                   for name in POSTGRES_INDEX_OBJECTS)


def http_requests_per_second(url: str, queries: list[str], seconds: float = 10.0, clients: int = 8) -> float:
    """gunicorn with two workers on loopback; a bounded run of concurrent clients, then it stops."""
    port = 18000 + random.Random(url).randint(0, 999)
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
        env=flask_env(url), cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        opener = _logged_in_opener(base)
        deadline = time.monotonic() + seconds

        def worker(offset: int) -> int:
            done, index = 0, offset
            while time.monotonic() < deadline and done < 100_000:
                query = urllib.parse.quote(queries[index % len(queries)])
                request = urllib.request.Request(f"{base}/search?q={query}", headers={"HX-Request": "true", "HX-Target": "results"})
                with opener.open(request) as response:
                    response.read()
                done, index = done + 1, index + clients
            return done

        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            total = sum(pool.map(worker, range(clients)))
        return total / (time.monotonic() - started)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _logged_in_opener(base: str):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    for _ in range(100):
        try:
            page = opener.open(f"{base}/login").read().decode()
            break
        except OSError:
            time.sleep(0.2)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": BENCH_USER, "password": BENCH_PASSWORD, "csrf_token": token}).encode()
    opener.open(f"{base}/login", data=data).read()
    return opener


def run(database: str, url: str, args) -> Figures:
    figures = Figures(database)
    figures.load_seconds = ensure_data(url, args.orders)
    app = create_app({"DATABASE_URL": url})
    ensure_bench_user(app)
    with app.app_context():
        figures.orders = db.session.execute(text("SELECT count(*) FROM orders")).scalar_one()
    queries = make_queries(app, args.queries, args.seed)
    warm_database(app)
    figures.ours_ms = time_ours(app, queries)
    figures.query_ms = time_search_function(app, queries)
    subset = like_subset(queries, args.like_queries)
    figures.like_ms = time_like(app, subset)
    figures.ours_on_like_subset_ms = [ms for tier, items in figures.ours_ms.items() for ms in items[:args.like_queries]]
    figures.index_bytes = index_bytes(app)
    if not args.skip_http:
        figures.requests_per_second = http_requests_per_second(url, [q for items in queries.values() for q in items])
    return figures


def report(all_figures: list[Figures]) -> None:
    print()
    header = f"{'figure':<34}" + "".join(f"{f.database:>14}" for f in all_figures) + f"{'target':>12}"
    print(header)
    print("-" * len(header))

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:<34}" + "".join(f"{value:>14}" for value in values) + f"{target:>12}")

    row("orders", [f"{f.orders:,}" for f in all_figures])
    every = [[ms for items in f.ours_ms.values() for ms in items] for f in all_figures]
    row("request median ms (all tiers)", [f"{statistics.median(v):.2f}" for v in every], "< 5")
    row("request p95 ms", [f"{percentile(v, .95):.2f}" for v in every], "< 25")
    row("request p99 ms", [f"{percentile(v, .99):.2f}" for v in every])
    row("search() alone median / p95 ms", [f"{statistics.median(f.query_ms):.2f}/{percentile(f.query_ms, .95):.2f}"
                                           for f in all_figures])
    for tier in TIERS:
        row(f"  {tier}: median / p95 ms", [
            f"{statistics.median(f.ours_ms[tier]):.1f}/{percentile(f.ours_ms[tier], .95):.1f}" for f in all_figures])
    row("LIKE scan median ms", [f"{statistics.median(f.like_ms):.1f}" for f in all_figures])
    row("LIKE scan p95 ms", [f"{percentile(f.like_ms, .95):.1f}" for f in all_figures])
    row("ours on the same queries, median", [f"{statistics.median(f.ours_on_like_subset_ms):.2f}" for f in all_figures])
    row("ratio of medians (LIKE / request)", [
        f"{statistics.median(f.like_ms) / statistics.median(f.ours_on_like_subset_ms):.0f}x" for f in all_figures], ">= 20")
    row("search index bytes per order", [f"{f.index_bytes / max(f.orders, 1):.0f}" for f in all_figures], "< 1024")
    row("HTTP requests/s (2 workers)", [f"{f.requests_per_second:.0f}" if f.requests_per_second else "-" for f in all_figures])
    row("demo load orders/s (if built)", [f"{f.orders / f.load_seconds:,.0f}" if f.load_seconds else "reused" for f in all_figures], ">= 20,000")
    print()
    print(json.dumps({f.database: {"median_ms": statistics.median(v), "p95_ms": percentile(v, .95),
                                   "p99_ms": percentile(v, .99), "like_median_ms": statistics.median(f.like_ms),
                                   "index_bytes_per_order": f.index_bytes / max(f.orders, 1),
                                   "requests_per_second": f.requests_per_second}
                      for f, v in zip(all_figures, every, strict=True)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per tier")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--like-queries", type=int, default=20, help="queries per tier for the LIKE scan (it is slow)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--sqlite-url", default=f"sqlite:///{ROOT / 'bench-data' / 'bench.sqlite3'}")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    (ROOT / "bench-data").mkdir(exist_ok=True)
    targets = [("sqlite", args.sqlite_url), ("postgresql", args.postgres_url)]
    if args.only:
        targets = [target for target in targets if target[0] == args.only]
    if any(name == "postgresql" for name, _ in targets):
        _ensure_postgres_database(args.postgres_url)
    report([run(name, url, args) for name, url in targets])


def _ensure_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()


if __name__ == "__main__":
    main()
