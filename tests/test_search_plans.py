"""The search tiers read indexes, on both databases: checked on the plans of the real queries."""
import pytest

from dashboard.models import db
from dashboard.search import Tier, reference_statement, term_statement


def _plan(statement) -> str:
    connection = db.session.connection()
    sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
    if connection.dialect.name == "postgresql":
        # Tiny test tables make a sequential scan cheapest; forbid it to see which index serves.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%")).all()
    else:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    # Long IN-lists of typo variants are cut so a failure message stays readable.
    return "\n".join(" ".join(str(part) for part in row)[:300] for row in rows)


@pytest.mark.parametrize("build,table", [(reference_statement, "references"), (term_statement, "search_terms")])
def test_contains_search_uses_the_trigram_index(both_app, build, table):
    with both_app.app_context():
        plan = _plan(build(db.session, "004711", Tier.CONTAINS, 200))
        if db.engine.dialect.name == "sqlite":
            assert f"{table}_fts VIRTUAL TABLE INDEX" in plan, plan
        else:
            assert f"ix_{table}_key_trgm" in plan, plan


@pytest.mark.parametrize("tier", [Tier.EXACT, Tier.PREFIX])
def test_exact_and_prefix_use_the_key_btree(both_app, tier):
    with both_app.app_context():
        plan = _plan(reference_statement(db.session, "po2026004711", tier, 200))
        assert "ix_references_key " in plan + " " and "trgm" not in plan, plan


def test_similar_looks_up_variants_in_a_key_index(both_app):
    # PostgreSQL may answer equality from either key index (pg_trgm's GIN supports =); both are indexes.
    with both_app.app_context():
        plan = _plan(reference_statement(db.session, "po2026004711", Tier.SIMILAR, 200))
        assert "ix_references_key" in plan and "SCAN references" not in plan and "Seq Scan" not in plan, plan
