"""Reads use indexes, on both databases: checked on the plans of the SQL they run."""
import pytest

from dashboard.models import db
from dashboard.search import Tier, tier_parameters, tier_sql


def _plan(source: str, tier: Tier, key: str = "po2026004711") -> str:
    connection = db.session.connection()
    dialect = connection.dialect.name
    parameters = tier_parameters(dialect, tier, key, 200)
    sql = tier_sql(dialect, source, tier, parameters)
    if dialect == "postgresql":
        # Tiny test tables make a sequential scan cheapest; forbid it to see which index serves.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.execute(db.text("EXPLAIN " + sql), parameters).all()
    else:
        rows = connection.execute(db.text("EXPLAIN QUERY PLAN " + sql), parameters).all()
    # Long lists of typo variants are cut so a failure message stays readable.
    return "\n".join(" ".join(str(part) for part in row)[:300] for row in rows)


@pytest.mark.parametrize("source", ["references", "search_terms"])
def test_contains_search_uses_the_trigram_index(both_app, source):
    with both_app.app_context():
        plan = _plan(source, Tier.CONTAINS)
        if db.engine.dialect.name == "sqlite":
            assert f"JOIN {source}_fts f" in tier_sql("sqlite", source, Tier.CONTAINS, {})
            # 0:M = the MATCH of the key's trigrams is answered by the FTS5 index; rows follow by rowid.
            assert "SCAN f VIRTUAL TABLE INDEX 0:M" in plan and "USING INTEGER PRIMARY KEY" in plan, plan
        else:
            assert f"ix_{source}_key_trgm" in plan, plan


@pytest.mark.parametrize("source", ["references", "search_terms"])
def test_prefix_is_one_range_scan_of_the_key_btree(both_app, source):
    with both_app.app_context():
        plan = _plan(source, Tier.PREFIX)
        assert f"ix_{source}_key" in plan and "trgm" not in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # the index gives the order


@pytest.mark.parametrize("source", ["references", "search_terms"])
def test_similar_looks_up_the_variants_in_a_key_index(both_app, source):
    # PostgreSQL may answer equality from either key index (pg_trgm's GIN supports =): both are indexes.
    with both_app.app_context():
        plan = _plan(source, Tier.SIMILAR)
        assert f"ix_{source}_key" in plan and f"SCAN {source[0]}\n" not in plan + "\n" and "Seq Scan" not in plan, plan


@pytest.mark.parametrize(("table", "index"), [("references", "ix_references_cart_id"), ("orders", "ix_orders_cart_id")])
def test_a_carts_rows_are_found_through_the_partial_cart_index(both_app, table, index):
    # The index holds only rows with a cart (models.only_where_set); `cart_id = x` must still use it.
    with both_app.app_context():
        connection = db.session.connection()
        sql = f'SELECT * FROM "{table}" WHERE cart_id = :cart_id'
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = str(connection.execute(db.text("EXPLAIN " + sql), {"cart_id": 7}).all())
        else:
            plan = str(connection.execute(db.text("EXPLAIN QUERY PLAN " + sql), {"cart_id": 7}).all())
        assert index in plan, plan
