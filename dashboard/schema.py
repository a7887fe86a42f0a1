"""Schema set-up: tables, plus what each database needs beyond them.

SQLite: FTS5 trigram indexes over the matching keys, kept in step by triggers.
PostgreSQL: pg_trgm GIN indexes over the matching keys, and triggers that refuse UPDATE, DELETE
and TRUNCATE on the audit table, so the log is append-only at the database level.
"""
from __future__ import annotations

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from .audit import ensure_head
from .models import db

# Tables whose `key` column gets a trigram index, and the name of that index.
TRIGRAM_INDEXED = {"references": "references_fts", "search_terms": "search_terms_fts"}

def _sqlite_fts(table: str, fts: str) -> list[str]:
    # detail='none' keeps the index small; a contains-search re-checks the key itself. Nothing ranks
    # by bm25, so no per-row token counts either (columnsize=0: a quarter less work to build).
    return [
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(
            key, content='{table}', content_rowid='id', tokenize='trigram', detail='none', columnsize=0)""",
        f"""CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON "{table}" BEGIN
            INSERT INTO {fts}(rowid, key) VALUES (new.id, new.key);
        END""",
        f"""CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON "{table}" BEGIN
            INSERT INTO {fts}({fts}, rowid, key) VALUES ('delete', old.id, old.key);
        END""",
        f"""CREATE TRIGGER IF NOT EXISTS {fts}_au AFTER UPDATE OF key ON "{table}" BEGIN
            INSERT INTO {fts}({fts}, rowid, key) VALUES ('delete', old.id, old.key);
            INSERT INTO {fts}(rowid, key) VALUES (new.id, new.key);
        END""",
    ]


SQLITE_AUDIT_GUARD = [
    f"""CREATE TRIGGER IF NOT EXISTS audit_events_no_{operation.lower()}
        BEFORE {operation} ON audit_events BEGIN
            SELECT RAISE(ABORT, 'audit_events is append-only');
        END"""
    for operation in ("UPDATE", "DELETE")
] + [
    """CREATE TRIGGER IF NOT EXISTS audit_head_forward BEFORE UPDATE ON audit_head
        WHEN NEW.seq < OLD.seq BEGIN
            SELECT RAISE(ABORT, 'audit_head only moves forward');
        END""",
    """CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head BEGIN
            SELECT RAISE(ABORT, 'audit_head only moves forward');
        END""",
]

POSTGRES_AUDIT_GUARD = [
    """CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: %% refused', TG_OP;
    END;
    $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()""",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()""",
    # The chain head only moves forward: rewinding it would hide events cut off the end.
    """CREATE OR REPLACE FUNCTION audit_head_only_forward() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
            RAISE EXCEPTION 'audit_head only moves forward';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_head_forward ON audit_head",
    """CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head
        FOR EACH ROW EXECUTE FUNCTION audit_head_only_forward()""",
]


def postgres_trigram_index(table: str) -> str:
    return f'CREATE INDEX IF NOT EXISTS ix_{table}_key_trgm ON "{table}" USING gin (key gin_trgm_ops)'


# How many keys hold each trigram, for choosing selective ones in a contains-search (search.py).
TRIGRAM_STATS = "CREATE TABLE IF NOT EXISTS trigram_stats (trigram TEXT PRIMARY KEY, docs INTEGER NOT NULL)"

# On PostgreSQL the counts come from a 5 % block sample: they only rank trigrams, so rough is enough.
POSTGRES_TRIGRAM_COUNTS = """
INSERT INTO trigram_stats (trigram, docs)
SELECT gram, count(*) * 20 FROM (
    SELECT key FROM "references" TABLESAMPLE SYSTEM (5)
    UNION ALL SELECT key FROM search_terms TABLESAMPLE SYSTEM (5)
) sampled CROSS JOIN LATERAL (
    SELECT DISTINCT substr(sampled.key, position, 3) AS gram FROM generate_series(1, length(sampled.key) - 2) position
) grams GROUP BY gram
"""


def _statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        fts = [sql for table, name in TRIGRAM_INDEXED.items() for sql in _sqlite_fts(table, name)]
        return fts + SQLITE_AUDIT_GUARD + [TRIGRAM_STATS]
    if dialect == "postgresql":
        return [postgres_trigram_index(table) for table in TRIGRAM_INDEXED] + POSTGRES_AUDIT_GUARD + [TRIGRAM_STATS]
    return []


def create_schema(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    db.metadata.create_all(engine)
    with engine.begin() as connection:
        # create_all makes the indexes of the tables it creates; these are for tables that exist
        # but lost one (a bulk load that was killed while they were dropped).
        for table in db.metadata.sorted_tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)
        for statement in _statements(engine.dialect.name):
            connection.exec_driver_sql(statement)
    with Session(engine) as session:
        ensure_head(session)
        session.commit()


def refresh_statistics(engine: Engine) -> None:
    """Planner statistics after a bulk load (ANALYZE), and on SQLite the trigram counts and merged FTS5 indexes.

    Run by `flask db analyze` and after `demo load`; counts that lag behind new data only make a
    contains-search pick a slightly worse pair of trigrams, never a wrong answer.
    """
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM trigram_stats")
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(POSTGRES_TRIGRAM_COUNTS)
        if engine.dialect.name == "sqlite":
            for fts in TRIGRAM_INDEXED.values():
                # One segment per index: a contains-search then reads each trigram's list once
                # (~15 % faster at the median; ~6 s at a million orders).
                connection.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")
                connection.exec_driver_sql(
                    f"CREATE VIRTUAL TABLE temp.{fts}_vocab USING fts5vocab(main, {fts}, 'row')")
                connection.exec_driver_sql(
                    f"INSERT INTO trigram_stats (trigram, docs) SELECT term, doc FROM temp.{fts}_vocab WHERE true "
                    "ON CONFLICT (trigram) DO UPDATE SET docs = docs + excluded.docs")
                connection.exec_driver_sql(f"DROP TABLE temp.{fts}_vocab")
        connection.exec_driver_sql("ANALYZE")


def configure_sqlite(engine: Engine) -> None:
    """WAL lets searches read while an edit writes; the timeout makes writers queue, not fail."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
