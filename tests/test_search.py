"""Search tiers, grouping and escaping, on SQLite and PostgreSQL alike."""
import pytest

from dashboard.models import CartState, db
from dashboard.search import Tier, one_edit_variants, search

from .factories import add_reference, make_cart, make_customer, make_order


@pytest.fixture
def data(both_app):
    with both_app.app_context():
        make_customer("DE--500", "jana.keller@example.com")
        cart = make_cart("quote-900", name="Office chairs", state=CartState.ORDERED, custom="PO-2026-004711")
        make_order("DE--1042", cart=cart, custom="PO-2026-004711", erp="SO-1000123",
                   tracking="1Z999AA10123456784", shipment="SHP-77812")
        make_order("DE--1043", custom="PO-2026-009999")
        make_cart("quote-901", name="Standing desks", custom="ÄR-12")
        old = make_order("DE--1044")
        add_reference(old, "invoice", "INV-55501", active=False)
        make_cart("quote-902", name="PO_1 test", custom="POX1")
        db.session.commit()
    return both_app


def _find(app, query, **kwargs):
    with app.app_context():
        results = search(db.session, query, **kwargs)
        orders = {row.record.order_reference: row.hit for row in results.orders.rows}
        carts = {row.record.key: row.hit for row in results.carts.rows}
        return results, orders, carts


def test_exact_custom_reference_finds_order_and_its_cart(data):
    _, orders, carts = _find(data, "po 2026 004711")
    assert orders["DE--1042"].tier == Tier.EXACT and orders["DE--1042"].field == "custom"
    assert carts["quote-900"].tier == Tier.EXACT
    assert "DE--1043" not in orders


def test_order_found_by_erp_and_tracking_number(data):
    _, orders, _ = _find(data, "so1000123")
    assert orders["DE--1042"].field == "erp" and orders["DE--1042"].tier == Tier.EXACT
    _, orders, _ = _find(data, "1z 999 aa1 0123 4567 84")
    assert orders["DE--1042"].field == "tracking"


def test_prefix_and_contains_tiers(data):
    results, orders, _ = _find(data, "PO-2026")
    assert {orders["DE--1042"].tier, orders["DE--1043"].tier} == {Tier.PREFIX}
    _, orders, _ = _find(data, "004711")
    assert orders["DE--1042"].tier == Tier.CONTAINS


def test_tiers_come_best_first(data):
    # "DE--104" is a prefix of three order references; "de1042" is exact for one.
    results, orders, _ = _find(data, "DE--1042")
    assert results.orders.rows[0].record.order_reference == "DE--1042"
    assert results.orders.rows[0].hit.tier == Tier.EXACT


def test_cart_found_by_key_name_and_owner(data):
    _, _, carts = _find(data, "quote-901")
    assert carts["quote-901"].field == "cart_key" and carts["quote-901"].tier == Tier.EXACT
    _, _, carts = _find(data, "standing desk")
    assert carts["quote-901"].field == "cart_name"
    _, orders, carts = _find(data, "DE--500")
    assert carts["quote-901"].field == "customer_reference"
    assert "DE--1042" in orders


def test_customer_email_finds_their_records(data):
    _, orders, carts = _find(data, "jana.keller@example")
    assert orders["DE--1042"].field == "email" and orders["DE--1042"].tier == Tier.PREFIX


def test_non_ascii_case_matches(data):
    _, _, carts = _find(data, "är-12")
    assert carts["quote-901"].tier == Tier.EXACT


def test_retired_reference_is_still_found_and_says_so(data):
    _, orders, _ = _find(data, "INV-55501")
    assert orders["DE--1044"].active is False


def test_like_wildcards_in_input_are_plain_text(data):
    results, orders, carts = _find(data, "%")
    assert results.empty
    _, orders, carts = _find(data, "PO_1")
    assert "quote-902" not in carts or carts["quote-902"].field == "cart_name"
    assert all(hit.value != "POX1" for hit in list(orders.values()) + list(carts.values()))


def test_similar_tier_finds_one_typo(data):
    _, orders, _ = _find(data, "SO-1000132")  # two digits swapped
    assert orders["DE--1042"].tier == Tier.SIMILAR


def test_results_are_grouped_into_orders_and_carts(data):
    results, orders, carts = _find(data, "PO-2026-004711")
    assert set(orders) == {"DE--1042"} and set(carts) == {"quote-900"}
    assert results.orders.total == 1 and results.carts.total == 1


def test_one_edit_variants_cover_each_typo():
    variants = one_edit_variants("abcdef")
    assert {"abdcef", "abcde", "abcdeff", "abcxef"} <= variants
    assert "abcdef" not in variants and "badcfe" not in variants
    # look-alikes across the letter/digit line, as read over the phone
    assert {"s01000123", "so1000l23", "so10o0123"} <= one_edit_variants("so1000123")


@pytest.mark.parametrize(
    "stored,typed",
    [
        ("ÄR-12", "är-12"),
        ("ÄR-12", "ÄR12"),
        ("PO-123/45", "po 12345"),
        ("PO-123/45", "po\u00a0123\u200b45"),
        ("PO-123/45", "ＰＯ－１２３／４５"),
        ("PO 123 45", "PO.123#45"),
        ("straße-9", "STRASSE 9"),
        ("PO\u2011123\u201345", "po-12345"),
    ],
)
def test_spellings_match_each_other_exactly(both_app, stored, typed):
    with both_app.app_context():
        make_cart("quote-n1", name="n", custom=stored)
        db.session.commit()
    _, _, carts = _find(both_app, typed)
    assert carts["quote-n1"].tier == Tier.EXACT and carts["quote-n1"].value == stored


@pytest.mark.parametrize("typed", ["ABCDEX", "ABDCEF", "ABCDE", "ABCDEFG", "XABCDEF"])
def test_similar_tier_one_typo_of_each_sort(both_app, typed):
    with both_app.app_context():
        make_cart("quote-s1", name="n", custom="ABCDEF")
        db.session.commit()
    _, _, carts = _find(both_app, typed)
    expected = {"ABCDE": Tier.PREFIX, "XABCDEF": Tier.SIMILAR}.get(typed, Tier.SIMILAR)
    assert carts["quote-s1"].tier == expected


def test_no_typo_matches_for_short_keys_or_two_typos(both_app):
    with both_app.app_context():
        make_cart("quote-s2", name="n", custom="ABCDE")
        make_cart("quote-s3", name="m", custom="KLMNOPQ")
        db.session.commit()
    results, _, carts = _find(both_app, "ABCDX")  # 5 characters: one typo, but too short
    assert "quote-s2" not in carts
    results, _, carts = _find(both_app, "KLMNXYQ")  # two characters wrong
    assert "quote-s3" not in carts


def test_within_a_tier_active_before_retired_and_open_carts_first(both_app):
    from datetime import datetime, timezone

    with both_app.app_context():
        make_cart("quote-r1", name="a", state=CartState.DELETED, custom="PO-RANK-1")
        make_cart("quote-r2", name="b", custom="PO-RANK-2")
        make_order("DE--7001", placed_at=datetime(2025, 1, 1, tzinfo=timezone.utc), custom="PO-RANK-3")
        make_order("DE--7002", placed_at=datetime(2026, 6, 1, tzinfo=timezone.utc), custom="PO-RANK-4")
        retired = make_order("DE--7003", placed_at=datetime(2026, 9, 1, tzinfo=timezone.utc))
        add_reference(retired, "erp", "PO-RANK-5", active=False)
        db.session.commit()
    results, _, _ = _find(both_app, "PO-RANK")
    assert [row.record.key for row in results.carts.rows] == ["quote-r2", "quote-r1"]
    assert [row.record.order_reference for row in results.orders.rows] == ["DE--7002", "DE--7001", "DE--7003"]


def test_contains_search_picks_rare_trigrams_apart_from_the_statistics(app):
    from dashboard.schema import refresh_statistics
    from dashboard.search import selective_trigrams

    with app.app_context():
        for number in range(30):
            make_cart(f"quote-t{number}", name="t", custom=f"PO-2025-{number:04d}")
        make_cart("quote-rare", name="r", custom="PO-2025-XQZ1")
        db.session.commit()
        refresh_statistics(db.engine)
        chosen = selective_trigrams(db.session, "2025xqz1")
        assert "xqz" in chosen or "5xq" in chosen or "qz1" in chosen or "25x" in chosen  # held by one key
        starts = sorted("2025xqz1".index(gram) for gram in chosen)
        assert all(later - earlier >= 3 for earlier, later in zip(starts, starts[1:]))
        results = search(db.session, "2025xqz1")
        assert [row.record.key for row in results.carts.rows] == ["quote-rare"]
        assert results.carts.rows[0].hit.tier == Tier.CONTAINS


# --- a value that is both an order's reference and a customer's reference -----------------------

def _customer_who_shares_an_order_reference(app, orders: int, *, owner: str = "DE--500") -> None:
    """Order DE--1042 (placed first, of `owner`) and customer DE--1042 with `orders` later orders and a cart."""
    from datetime import datetime, timedelta, timezone

    first = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        make_customer("DE--500", "jana.keller@example.com")
        make_customer("DE--1042", "max.huber@example.com")
        make_order("DE--1042", customer_reference=owner, placed_at=first)
        for number in range(orders):
            make_order(f"DE--{5000 + number}", customer_reference="DE--1042",
                       placed_at=first + timedelta(days=number + 1))
        make_cart("quote-1042", name="Max's cart", customer_reference="DE--1042")
        db.session.commit()


@pytest.mark.parametrize("owner", ["DE--500", "DE--1042"])  # the order of another customer, or of that one
def test_an_order_reference_that_is_also_a_customer_reference_finds_the_order_first(both_app, owner):
    _customer_who_shares_an_order_reference(both_app, 25, owner=owner)  # more orders than a page shows
    results, orders, carts = _find(both_app, "DE--1042")
    first = results.orders.rows[0]
    assert (first.record.order_reference, first.hit.field, first.hit.tier) == \
        ("DE--1042", "order_reference", Tier.EXACT)
    assert results.single_exact is first
    # The customer's orders and carts still come, exact, saying they matched the customer's reference.
    assert results.orders.total == 26 and len(results.orders.rows) == 20
    customers_orders = [hit for reference, hit in orders.items() if reference != "DE--1042"]
    assert {(hit.field, hit.tier) for hit in customers_orders} == {("customer_reference", Tier.EXACT)}
    assert carts["quote-1042"].field == "customer_reference"
    # ... in the order they had: the most recent first.
    assert [row.record.order_reference for row in results.orders.rows[1:4]] == ["DE--5024", "DE--5023", "DE--5022"]


def test_customer_fan_out_beyond_the_candidate_budget_keeps_the_order_first(both_app):
    _customer_who_shares_an_order_reference(both_app, 25)
    results, _, _ = _find(both_app, "DE--1042", candidates=10)  # the customer has more orders than that
    assert results.orders.more
    assert results.orders.rows[0].record.order_reference == "DE--1042"
    assert results.single_exact is results.orders.rows[0]


def test_prefix_hits_do_not_crowd_out_an_exact_hit_of_another_source(both_app):
    # Both sources (references, records' own fields) are read for the exact key before either is read
    # for prefixes: budget-many references that merely start with the value leave room for the order.
    with both_app.app_context():
        make_customer("DE--1042", "max.huber@example.com")
        other = make_order("DE--2000")
        for number in range(12):
            add_reference(other, "shipment", f"DE--1042-{number:02d}")
        make_order("DE--1042")
        make_order("DE--2001", customer_reference="DE--1042")
        db.session.commit()
    results, orders, _ = _find(both_app, "DE--1042", candidates=10)
    assert results.orders.rows[0].record.order_reference == "DE--1042"
    assert orders["DE--1042"].tier == Tier.EXACT and orders["DE--2001"].tier == Tier.EXACT
    assert orders["DE--2000"].tier == Tier.PREFIX
    assert results.single_exact is results.orders.rows[0]


def test_a_search_matching_only_customer_fields_is_unchanged(both_app):
    from datetime import datetime, timezone

    with both_app.app_context():
        make_customer("DE--500", "jana.keller@example.com")
        make_customer("DE--600", "max.huber@example.com")
        for number, month in ((1, 3), (2, 9), (3, 6)):
            make_order(f"DE--{1100 + number}", placed_at=datetime(2026, month, 1, tzinfo=timezone.utc))
        make_order("DE--1200", customer_reference="DE--600")
        make_cart("quote-500", name="Jana's cart")
        db.session.commit()
    results, orders, carts = _find(both_app, "DE--500")
    assert [row.record.order_reference for row in results.orders.rows] == ["DE--1102", "DE--1103", "DE--1101"]
    hits = [*orders.values(), *carts.values()]
    assert {(hit.field, hit.tier) for hit in hits} == {("customer_reference", Tier.EXACT)}
    assert results.single_exact is None  # several exact rows, none the record's own: no best match
    results, orders, _ = _find(both_app, "DE--600")  # one exact row overall is still the best match
    assert results.single_exact is not None and results.single_exact.record.order_reference == "DE--1200"
    assert results.single_exact.hit.field == "customer_reference"
    _, orders, carts = _find(both_app, "jana.keller@example")
    assert {hit.field for hit in [*orders.values(), *carts.values()]} == {"email"} and len(orders) == 3


def test_two_records_owning_the_value_give_no_best_match(both_app):
    with both_app.app_context():
        make_customer("DE--1042", "max.huber@example.com")
        make_order("DE--1042")
        make_cart("quote-77", name="n", custom="DE--1042")
        make_order("DE--2001", customer_reference="DE--1042")
        db.session.commit()
    results, _, carts = _find(both_app, "DE--1042")
    assert results.orders.rows[0].record.order_reference == "DE--1042" and carts["quote-77"].field == "custom"
    assert results.single_exact is None


@pytest.mark.parametrize("source", ["references", "search_terms"])
def test_the_exact_read_is_a_look_up_in_the_key_btree(both_app, source):
    from .test_search_plans import _plan

    with both_app.app_context():
        plan = _plan(source, Tier.EXACT)
        assert f"ix_{source}_key" in plan and "trgm" not in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
