"""The read side: find orders and carts by any reference, in tiers, and say why each matched.

Tiers, best first: exact key, prefix, contains (3+ characters), similar (one typo, 6+ characters).
Every tier reads an index over the matching key, in references and in the search terms of records'
own fields:

- exact: an equality look-up in the key B-tree; prefix: a range scan of it (`key > k AND key < k +
  U+10FFFF`, byte-wise on both databases). Two reads, so that every source's exact hits are in the
  candidates before any prefix hit takes a place;
- contains: the FTS5 trigram index (SQLite) or the pg_trgm GIN index (PostgreSQL);
- similar: the query's one-edit variants, looked up exactly in the key B-tree, passed as one
  parameter (a JSON array, or on PostgreSQL one text the server splits).

A weaker tier only fills what the stronger ones left of the candidate budget, so a short query that
matches a million keys costs no more than one that matches two hundred; the similar tier runs only
when nothing else matched. Within a tier, a hit on a record's own data ranks before a hit that
reaches it through its customer (CUSTOMER_FIELDS). Exact, prefix and contains over both sources,
with each hit's order or cart summary, are ONE statement (search_sql), the similar tier a second
one: on PostgreSQL every statement is a round trip. The hot path is plain SQL with bound parameters
(no user text is ever part of the SQL); the ORM would add milliseconds.
"""
from __future__ import annotations

import json
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from functools import lru_cache
from string import ascii_lowercase, digits

from sqlalchemy import TextualSelect, text
from sqlalchemy.orm import Session

from .indexing import customer_fields
from .models import CartState, UTCDateTime
from .references import highlight_span, matching_key

MIN_CONTAINS = 3
MIN_SIMILAR = 6
# Highest code point: every key that starts with k sorts between k and k + TOP (UTF-8 and C collation).
TOP = "\U0010ffff"

# The fields that reach an order or cart only through its customer: the terms of a customer's own
# fields (reference, e-mail) lead to every order and cart of that customer (the fan-out in _step_sql).
# Every other field (order reference, cart key, uuid and name, any reference kind) is the record's own.
# A customer reference has the shape of an order reference (DE--1042), so one value can be both: the
# agent who typed it must get that order first and as the best match, not somewhere among the
# customer's many orders. The one place that says which is which; ranking and the best match use it.
CUSTOMER_FIELDS = frozenset(field for field, _value in customer_fields(None, None))


def hit_rank(tier: int, field: str, active: bool) -> tuple[int, int, int]:
    """The order of hits, best first: tier, then the record's own data before its customer's, then
    active before retired."""
    return (tier, 1 if field in CUSTOMER_FIELDS else 0, 0 if active else 1)


class Tier(IntEnum):
    EXACT = 0
    PREFIX = 1
    CONTAINS = 2
    SIMILAR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Hit:
    """One reason a record matched: which tier, which field and the value as entered."""

    record_type: str  # order or cart
    record_id: int
    tier: Tier
    field: str  # a reference kind (custom, erp...) or a record field (order_reference...)
    value: str
    active: bool
    key: str

    @property
    def through_customer(self) -> bool:
        """The hit is on the record's customer (reference, e-mail), not on the record's own data."""
        return self.field in CUSTOMER_FIELDS

    def rank(self) -> tuple[int, int, int]:
        return hit_rank(self.tier, self.field, self.active)

    def match_in_key(self, query_key: str) -> tuple[int, int] | None:
        """Start and length of the matched part within this hit's key, for highlighting."""
        if self.tier == Tier.SIMILAR:
            return None
        start = self.key.find(query_key)
        return (start, len(query_key)) if start >= 0 else None


@dataclass(frozen=True)
class OrderSummary:
    id: int
    order_reference: str
    status: str
    name: str | None
    customer_reference: str | None
    email: str | None
    placed_at: datetime
    grand_total: int
    currency: str


@dataclass(frozen=True)
class CartSummary:
    id: int
    key: str
    name: str
    state: str
    customer_reference: str | None
    updated_at: datetime
    grand_total: int
    currency: str


@dataclass
class ResultRow:
    record: OrderSummary | CartSummary
    hit: Hit

    def highlight(self, query_key: str) -> tuple[int, int] | None:
        """The slice of the value as entered to mark, or None to mark nothing."""
        match = self.hit.match_in_key(query_key)
        return highlight_span(self.hit.value, *match) if match else None


@dataclass
class Group:
    rows: list[ResultRow] = field(default_factory=list)
    total: int = 0
    more: bool = False  # the candidate budget ran out: total is a lower bound


@dataclass
class SearchResults:
    query: str
    key: str
    orders: Group
    carts: Group

    @property
    def empty(self) -> bool:
        return not self.orders.rows and not self.carts.rows

    @property
    def single_exact(self) -> ResultRow | None:
        """The best match Enter opens: the one record with an exact hit on its own data, even when the
        same value is also a customer's reference (their orders are exact hits too); otherwise the one
        exact row, if there is only one. Own exact hits rank first in their group, so they are shown."""
        rows = self.orders.rows + self.carts.rows
        exact = [row for row in rows if row.hit.tier == Tier.EXACT]
        own = [row for row in exact if not row.hit.through_customer]
        if len(own) == 1:
            return own[0]
        return exact[0] if len(exact) == 1 else None


# Characters read or typed for one another across the letter/digit line ("O" for "0"...).
CONFUSABLE = {"0": "o", "o": "0", "1": "il", "i": "1", "l": "1", "2": "z", "z": "2", "5": "s", "s": "5",
              "8": "b", "b": "8", "6": "g", "g": "6"}


def _typed_for(char: str) -> str:
    """What an agent may type instead of `char`: its own class (digit or letter) and its look-alikes."""
    same_class = digits if char.isdigit() else ascii_lowercase if char.isascii() else ascii_lowercase + char
    return same_class + CONFUSABLE.get(char, "")


def one_edit_variants(key: str) -> set[str]:
    """Every key one typo away: a character wrong, missing, extra, or two swapped.

    A wrong or missing character is one of the class of its neighbours (a digit among digits, a
    letter among letters) or a look-alike across the line (O/0, I/1, S/5, B/8...): reference numbers
    keep their letters and digits in fixed places, and this keeps the look-ups to a third.
    """
    variants: set[str] = set()
    for index in range(len(key) + 1):
        head, tail = key[:index], key[index:]
        neighbours = (key[index - 1] if index else "") + (tail[0] if tail else "")
        missing = set("".join(_typed_for(char) for char in neighbours))
        variants.update(head + char + tail for char in missing)  # agent missed a character
        if tail:
            variants.add(head + tail[1:])  # agent typed one too many
            variants.update(head + char + tail[1:] for char in _typed_for(tail[0]))  # one wrong
        if len(tail) > 1:
            variants.add(head + tail[1] + tail[0] + tail[2:])  # two swapped
    variants.discard(key)
    return variants


# --- SQL: one statement for the stronger tiers; conditions differ by database --------------------

REFERENCE_SELECT = 'SELECT r.order_id, r.cart_id, r.kind, r.value, r.active, r.key FROM "references" r'
TERM_SELECT = "SELECT t.record_type, t.record_id, t.field, t.value, t.key FROM search_terms t"
SOURCES = {"references": ("r", REFERENCE_SELECT), "search_terms": ("t", TERM_SELECT)}


def tier_sql(dialect: str, source: str, tier: Tier, parameters: dict, limit: str = ":limit") -> str:
    """The SQL a tier runs over one source (references or search_terms); public for plan tests.

    `limit` is the SQL for the rows it may return: in a search, what the stronger reads left of the
    candidate budget.
    """
    alias, head = SOURCES[source]
    if tier == Tier.EXACT:
        return f"{head} WHERE {alias}.key = :key LIMIT {limit}"
    if tier == Tier.PREFIX:
        return f"{head} WHERE {alias}.key > :key AND {alias}.key < :upper ORDER BY {alias}.key LIMIT {limit}"
    if tier == Tier.SIMILAR:
        # The variants are ONE parameter: a JSON array (SQLite) or one text of space-separated keys
        # that the server splits (PostgreSQL; keys hold no spaces, and psycopg's quoting of a
        # 600-element array cost more than the look-ups).
        if dialect == "sqlite":
            return f"{head} WHERE {alias}.key IN (SELECT value FROM json_each(:variants)) LIMIT {limit}"
        return f"{head} WHERE {alias}.key = ANY(string_to_array(:variants, ' ')) LIMIT {limit}"
    if dialect == "sqlite":
        # FTS5 narrows to rows holding the key's most selective trigrams (selective_trigrams); instr()
        # confirms the substring. > 1 because prefix matches were found by the range scan.
        return (f"{head} JOIN {source}_fts f ON f.rowid = {alias}.id "
                f"WHERE {source}_fts MATCH :trigrams AND instr({alias}.key, :key) > 1 LIMIT {limit}")
    # The GIN index intersects the posting lists of the selective trigrams alone (one LIKE each; a
    # LIKE of the whole key would read every trigram's list). Keys hold only letters and digits, so
    # the patterns carry no wildcard of the user's.
    likes = " AND ".join(f"{alias}.key LIKE :{name}" for name in sorted(parameters) if name.startswith("gram"))
    return f"{head} WHERE {likes} AND strpos({alias}.key, :key) > 1 LIMIT {limit}"


def _step_sql(dialect: str, source: str, tier: Tier, parameters: dict, step: int, limit: str) -> list[str]:
    """CTEs naming one read's hits `step<N>`: tier, record type and id, field, value as entered,
    active, key, and `pos`, the order found in. A record's own field leads to the record; a
    customer's field (reference, e-mail) to the customer's orders and to their carts, each within
    the same `limit` (as many as the budget had left when the read began)."""
    name = f"step{step}"
    read = tier_sql(dialect, source, tier, parameters, limit)
    if source == "references":
        return [f"{name} AS MATERIALIZED (SELECT {int(tier)} AS tier, "
                "CASE WHEN r.order_id IS NULL THEN 'cart' ELSE 'order' END AS record_type, "
                "coalesce(r.order_id, r.cart_id) AS record_id, r.kind AS field, r.value AS value, "
                f"r.active AS active, r.key AS key, row_number() OVER () AS pos FROM ({read}) r)"]
    customers = " UNION ALL ".join(
        f"SELECT * FROM (SELECT '{record_type}' AS record_type, x.id AS record_id, t.field, t.value, t.key "
        f"FROM {name}_terms t JOIN customers c ON c.id = t.record_id "
        f"JOIN {table} x ON x.customer_reference = c.customer_reference "
        f"WHERE t.record_type = 'customer' LIMIT {limit}) {record_type}s"
        for table, record_type in (("orders", "order"), ("carts", "cart"))
    )
    return [
        f"{name}_terms AS MATERIALIZED ({read})",
        f"{name} AS MATERIALIZED (SELECT {int(tier)} AS tier, h.record_type, h.record_id, h.field, h.value, "
        "TRUE AS active, h.key, row_number() OVER () AS pos FROM ("
        f"SELECT t.record_type, t.record_id, t.field, t.value, t.key FROM {name}_terms t "
        f"WHERE t.record_type <> 'customer' UNION ALL {customers}) h)",
    ]


def search_sql(dialect: str, tiers: Sequence[Tier], parameters: dict) -> str:
    """ONE statement for the given tiers, best first, each hit with its order's or cart's summary.

    Each tier reads references, then search terms. A read may return what the reads before it left
    of the candidate budget (:limit), counted in the running totals `used<N>`: a weaker tier only
    fills what the stronger ones left, and once the budget is spent the reads after it return
    nothing without touching an index.
    """
    greatest = "max" if dialect == "sqlite" else "greatest"
    ctes: list[str] = []
    steps = [(tier, source) for tier in tiers for source in SOURCES]
    for step, (tier, source) in enumerate(steps):
        limit = ":limit" if step == 0 else f"(SELECT {greatest}(:limit - n, 0) FROM used{step - 1})"
        ctes += _step_sql(dialect, source, tier, parameters, step, limit)
        before = f"(SELECT n FROM used{step - 1}) + " if step else ""
        ctes.append(f"used{step} AS MATERIALIZED (SELECT {before}(SELECT count(*) FROM step{step}) AS n)")
    hits = " UNION ALL ".join(f"SELECT {step} AS step, * FROM step{step}" for step in range(len(steps)))
    return (
        f"WITH {', '.join(ctes)} "
        "SELECT h.tier, h.record_type, h.record_id, h.field, h.value, h.active, h.key, "
        "o.order_reference, o.status, o.email, o.placed_at, c.key AS cart_key, c.state, c.updated_at, "
        "coalesce(o.name, c.name) AS name, coalesce(o.customer_reference, c.customer_reference) AS customer_reference, "
        "coalesce(o.grand_total, c.grand_total) AS grand_total, coalesce(o.currency, c.currency) AS currency "
        f"FROM ({hits}) h {_summary_join(dialect, 'orders', 'o', 'order')} {_summary_join(dialect, 'carts', 'c', 'cart')} "
        "ORDER BY h.step, h.pos"
    )


def _summary_join(dialect: str, table: str, alias: str, record_type: str) -> str:
    """The hit's record, looked up by primary key for each hit.

    PostgreSQL cannot know how many hits there will be (the reads' limits are computed) and may guess
    thousands, then prefer hashing the whole table; a LATERAL subquery that cannot be pulled up
    (OFFSET 0) keeps it a primary-key look-up per hit. SQLite always looks up per row.
    """
    condition = f"h.record_type = '{record_type}' AND {alias}.id = h.record_id"
    if dialect == "sqlite":
        return f"LEFT JOIN {table} {alias} ON {condition}"
    return f"LEFT JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {condition} OFFSET 0) {alias} ON TRUE"


def trigrams(key: str) -> list[str]:
    return sorted({key[index:index + 3] for index in range(len(key) - 2)})


# Posting-list entries a contains-search may read (FTS5 and GIN read every list they are given whole).
TRIGRAM_READ_BUDGET = 80_000
MAX_TRIGRAMS = 4
# The trigram counts (a few tens of thousands of rows, refreshed by `db analyze`) are kept in each
# process for this long: they only rank trigrams, and reading them per search cost a round trip.
TRIGRAM_COUNTS_TTL = 300.0
_trigram_counts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trigram_counts(session: Session) -> dict[str, int]:
    """How many keys hold each trigram (trigram_stats), read at most every TRIGRAM_COUNTS_TTL seconds."""
    engine = session.get_bind()
    cached = _trigram_counts.get(engine)
    now = time.monotonic()
    if cached is None or now - cached[0] > TRIGRAM_COUNTS_TTL:
        cached = (now, dict(session.execute(text("SELECT trigram, docs FROM trigram_stats")).all()))
        _trigram_counts[engine] = cached
    return cached[1]


def selective_trigrams(session: Session, key: str) -> list[str]:
    """The trigrams of `key` the trigram index should intersect: rare ones, from apart in the key.

    Counts come from trigram_stats (see schema.refresh_statistics; one unseen counts as rare).
    Overlapping trigrams say nearly the same thing ("bot" and "ebo" in "Angebot"), so each chosen one
    starts at least three characters from the others; beyond two, more are added, rarest first,
    while the posting lists to read stay within the budget.
    """
    if len(key) <= 3:
        return [key]
    docs = trigram_counts(session)
    by_rarity = sorted((docs.get(key[start:start + 3], 0), start) for start in range(len(key) - 2))
    chosen: list[int] = []
    read = 0
    for count, start in by_rarity:
        # Two at least: one trigram alone leaves thousands of rows to check one by one.
        if len(chosen) == MAX_TRIGRAMS or (len(chosen) >= 2 and read + count > TRIGRAM_READ_BUDGET):
            break
        if all(abs(start - other) >= 3 for other in chosen):
            chosen.append(start)
            read += count
    for _count, start in by_rarity:  # a short key has no two apart: overlapping ones still narrow
        if len(chosen) >= 2:
            break
        if start not in chosen:
            chosen.append(start)
    return sorted({key[start:start + 3] for start in chosen})


def tier_parameters(dialect: str, tier: Tier, key: str, limit: int, session: Session | None = None) -> dict:
    parameters: dict = {"key": key, "limit": limit}
    if tier == Tier.PREFIX:
        parameters["upper"] = key + TOP
    elif tier == Tier.CONTAINS:
        grams = selective_trigrams(session, key) if session is not None else trigrams(key)[:MAX_TRIGRAMS]
        if dialect == "sqlite":
            parameters["trigrams"] = " AND ".join(f'"{gram}"' for gram in grams)
        else:
            parameters.update({f"gram{index}": f"%{gram}%" for index, gram in enumerate(grams)})
    elif tier == Tier.SIMILAR:
        variants = sorted(one_edit_variants(key))
        parameters["variants"] = json.dumps(variants) if dialect == "sqlite" else " ".join(variants)
    return parameters


# --- collecting hits -----------------------------------------------------------------------------

def _tier_plan(key: str) -> list[Tier]:
    """The tiers to read, best first."""
    plan = [Tier.EXACT, Tier.PREFIX]
    if len(key) >= MIN_CONTAINS:
        plan.append(Tier.CONTAINS)
    if len(key) >= MIN_SIMILAR:
        plan.append(Tier.SIMILAR)
    return plan


# Summaries are typed so both databases give aware UTC datetimes (SQLite stores text).
_SUMMARY_TYPES = {"placed_at": UTCDateTime(), "updated_at": UTCDateTime()}


@lru_cache(maxsize=64)
def _statement(dialect: str, tiers: tuple[Tier, ...], gram_names: tuple[str, ...]) -> TextualSelect:
    """The search statement for these tiers and trigram parameters, parsed once: a handful of shapes
    in all, and parsing the bind parameters out of the SQL text each time cost a fifth of a millisecond."""
    return text(search_sql(dialect, tiers, dict.fromkeys(gram_names))).columns(**_SUMMARY_TYPES)


def _run(session: Session, tiers: tuple[Tier, ...], key: str, candidates: int) -> list:
    dialect = session.get_bind().dialect.name
    parameters: dict = {}
    for tier in tiers:
        parameters.update(tier_parameters(dialect, tier, key, candidates, session))
    grams = tuple(sorted(name for name in parameters if name.startswith("gram")))
    return session.execute(_statement(dialect, tiers, grams), parameters).all()


def collect_rows(session: Session, key: str, candidates: int) -> tuple[list, bool]:
    """Hit rows (with summaries) from every tier within the budget; True when the budget ran out.

    One statement for exact, prefix and contains; the similar tier is a "did you mean": it runs,
    as a second statement, only when no stronger tier found anything, so typo look-alikes never
    crowd real matches. A record's own exact hit is not crowded out either: exact keys are read, in
    both sources, before any prefix, and a customer's term leads to the customer's orders and carts
    beside, not instead of, the records' own terms of the same read (only later reads pay for the
    fan-out).
    """
    plan = _tier_plan(key)
    rows = _run(session, tuple(tier for tier in plan if tier != Tier.SIMILAR), key, candidates)
    if not rows and Tier.SIMILAR in plan:
        rows = _run(session, (Tier.SIMILAR,), key, candidates)
    return rows, len(rows) >= candidates


# --- records and ranking -------------------------------------------------------------------------
# Rows are plain tuples in the column order of search_sql; only the rows shown become objects.

def _order_rank(rank: tuple[int, int, int], row: tuple) -> tuple:
    """Within a tier: own data before the customer's, active references first, then the most recent orders."""
    return (*rank, -row[10].timestamp(), row[7])


def _cart_rank(rank: tuple[int, int, int], row: tuple) -> tuple:
    """Within a tier: own data before the customer's, active references first, then open carts, then
    the most recently changed."""
    return (*rank, row[12] != CartState.OPEN, -row[13].timestamp(), row[11])


def _best_rows(rows: Iterable[tuple]) -> dict[tuple[str, int], tuple[tuple[int, int, int], tuple]]:
    """Each record's best hit (hit_rank): the strongest tier, its own data before its customer's,
    active before retired, the first found among equals."""
    best: dict[tuple[str, int], tuple[tuple[int, int, int], tuple]] = {}
    for row in rows:
        tier, record_type, record_id, field_, _value, active = row[:6]
        rank = hit_rank(tier, field_, active)
        record = (record_type, record_id)
        if record not in best or rank < best[record][0]:
            best[record] = (rank, row)
    return best


def _result_row(rank: tuple[int, int, int], row: tuple) -> ResultRow:
    (_tier, record_type, record_id, field_, value, active, key, order_reference, status, email, placed_at,
     cart_key, state, updated_at, name, customer_reference, grand_total, currency) = row
    hit = Hit(record_type, record_id, Tier(rank[0]), field_, value, bool(active), key)
    if record_type == "order":
        record: OrderSummary | CartSummary = OrderSummary(
            record_id, order_reference, status, name, customer_reference, email, placed_at, grand_total, currency)
    else:
        record = CartSummary(record_id, cart_key, name, state, customer_reference, updated_at, grand_total, currency)
    return ResultRow(record, hit)


def _group(ranked: list[tuple[tuple, tuple[int, int, int], tuple]], shown: int, more: bool) -> Group:
    ranked.sort(key=lambda item: item[0])
    return Group(rows=[_result_row(rank, row) for _, rank, row in ranked[:shown]], total=len(ranked), more=more)


def search(session: Session, query: str, *, shown: int = 20, candidates: int = 200) -> SearchResults:
    """All orders and carts matching `query`, best tier first, at most `shown` rows per group."""
    key = matching_key(query)
    rows, more = collect_rows(session, key, candidates) if key else ([], False)
    orders: list = []
    carts: list = []
    for (record_type, _id), (rank, row) in _best_rows(rows).items():
        if record_type == "order":
            orders.append((_order_rank(rank, row), rank, row))
        else:
            carts.append((_cart_rank(rank, row), rank, row))
    return SearchResults(query=query, key=key, orders=_group(orders, shown, more), carts=_group(carts, shown, more))
