"""The read side: find orders and carts by any reference, in tiers, and say why each matched.

Tiers, best first: exact key, prefix, contains (3+ characters), similar (one typo, 6+ characters).
Every tier reads an index over the matching key, in references and in the search terms of records'
own fields:

- exact and prefix: one range scan of the key B-tree (`key >= k AND key < k + U+10FFFF`, byte-wise
  on both databases); the exact key sorts first in that range;
- contains: the FTS5 trigram index (SQLite) or the pg_trgm GIN index (PostgreSQL);
- similar: the query's one-edit variants, looked up exactly in the key B-tree, passed as one
  array parameter.

A weaker tier only fills what the stronger ones left of the candidate budget, so a short query that
matches a million keys costs no more than one that matches two hundred; the similar tier runs only
when nothing else matched. The hot path is plain SQL
with bound parameters (no user text is ever part of the SQL); the ORM would add milliseconds.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from string import ascii_lowercase, digits

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from .models import Cart, CartState, Order
from .references import highlight_span, matching_key

MIN_CONTAINS = 3
MIN_SIMILAR = 6
# Highest code point: every key that starts with k sorts between k and k + TOP (UTF-8 and C collation).
TOP = "\U0010ffff"


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

    def rank(self) -> tuple[int, int]:
        return (self.tier, 0 if self.active else 1)

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
        rows = self.orders.rows + self.carts.rows
        exact = [row for row in rows if row.hit.tier == Tier.EXACT]
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


# --- SQL: one statement per tier and source; conditions differ by database -----------------------

REFERENCE_SELECT = 'SELECT r.order_id, r.cart_id, r.kind, r.value, r.active, r.key FROM "references" r'
TERM_SELECT = "SELECT t.record_type, t.record_id, t.field, t.value, t.key FROM search_terms t"
SOURCES = {"references": ("r", REFERENCE_SELECT), "search_terms": ("t", TERM_SELECT)}


def _in_list(dialect: str, column: str, parameter: str) -> str:
    """`column` is one of a list passed as ONE parameter: a JSON array (SQLite) or an array (PostgreSQL)."""
    if dialect == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:{parameter}))"
    return f"{column} = ANY(:{parameter})"


def tier_sql(dialect: str, source: str, tier: Tier, parameters: dict) -> str:
    """The SQL a tier runs over one source (references or search_terms); public for plan tests."""
    alias, head = SOURCES[source]
    if tier in (Tier.EXACT, Tier.PREFIX):
        return f"{head} WHERE {alias}.key >= :key AND {alias}.key < :upper ORDER BY {alias}.key LIMIT :limit"
    if tier == Tier.SIMILAR:
        return f"{head} WHERE {_in_list(dialect, alias + '.key', 'variants')} LIMIT :limit"
    if dialect == "sqlite":
        # FTS5 narrows to rows holding the key's most selective trigrams (selective_trigrams); instr()
        # confirms the substring. > 1 because prefix matches were found by the range scan.
        return (f"{head} JOIN {source}_fts f ON f.rowid = {alias}.id "
                f"WHERE {source}_fts MATCH :trigrams AND instr({alias}.key, :key) > 1 LIMIT :limit")
    # The GIN index intersects the posting lists of the selective trigrams alone (one LIKE each; a
    # LIKE of the whole key would read every trigram's list). Keys hold only letters and digits, so
    # the patterns carry no wildcard of the user's.
    likes = " AND ".join(f"{alias}.key LIKE :{name}" for name in sorted(parameters) if name.startswith("gram"))
    return f"{head} WHERE {likes} AND strpos({alias}.key, :key) > 1 LIMIT :limit"


def trigrams(key: str) -> list[str]:
    return sorted({key[index:index + 3] for index in range(len(key) - 2)})


# Posting-list entries a contains-search may read (FTS5 and GIN read every list they are given whole).
TRIGRAM_READ_BUDGET = 80_000
MAX_TRIGRAMS = 4


def selective_trigrams(session: Session, key: str) -> list[str]:
    """The trigrams of `key` the trigram index should intersect: rare ones, from apart in the key.

    Counts come from trigram_stats (see schema.refresh_statistics; one unseen counts as rare).
    Overlapping trigrams say nearly the same thing ("bot" and "ebo" in "Angebot"), so each chosen one
    starts at least three characters from the others; beyond two, more are added, rarest first,
    while the posting lists to read stay within the budget.
    """
    if len(key) <= 3:
        return [key]
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        text(f"SELECT trigram, docs FROM trigram_stats WHERE {_in_list(dialect, 'trigram', 'grams')}"),
        {"grams": _ids_parameter(dialect, trigrams(key))},
    ).all()
    docs = dict(rows)
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
    if tier in (Tier.EXACT, Tier.PREFIX):
        parameters["upper"] = key + TOP
    elif tier == Tier.CONTAINS:
        grams = selective_trigrams(session, key) if session is not None else trigrams(key)[:MAX_TRIGRAMS]
        if dialect == "sqlite":
            parameters["trigrams"] = " AND ".join(f'"{gram}"' for gram in grams)
        else:
            parameters.update({f"gram{index}": f"%{gram}%" for index, gram in enumerate(grams)})
    else:
        variants = sorted(one_edit_variants(key))
        parameters["variants"] = json.dumps(variants) if dialect == "sqlite" else variants
    return parameters


def _ids_parameter(dialect: str, ids: Sequence) -> object:
    return json.dumps(list(ids)) if dialect == "sqlite" else list(ids)


# --- collecting hits -----------------------------------------------------------------------------

def _classify(tier: Tier, key: str, found_key: str) -> Tier:
    if tier in (Tier.EXACT, Tier.PREFIX):
        return Tier.EXACT if found_key == key else Tier.PREFIX
    return tier


def _source_hits(session: Session, source: str, tier: Tier, key: str, parameters: dict) -> list[Hit]:
    dialect = session.get_bind().dialect.name
    rows = session.execute(text(tier_sql(dialect, source, tier, parameters)), parameters).all()
    limit = parameters["limit"]
    hits: list[Hit] = []
    customer_terms: list[tuple] = []
    for row in rows:
        if source == "references":
            order_id, cart_id, kind, value, active, found_key = row
            owner = ("order", order_id) if order_id is not None else ("cart", cart_id)
            hits.append(Hit(*owner, _classify(tier, key, found_key), kind, value, bool(active), found_key))
        elif row.record_type == "customer":
            customer_terms.append(row)
        else:
            hits.append(Hit(row.record_type, row.record_id, _classify(tier, key, row.key), row.field,
                            row.value, True, row.key))
    return hits + _customer_hits(session, customer_terms, tier, key, limit)


def _customer_hits(session: Session, terms: list, tier: Tier, key: str, limit: int) -> list[Hit]:
    """A matching customer field (reference, e-mail) leads to that customer's orders and carts."""
    if not terms:
        return []
    dialect = session.get_bind().dialect.name
    by_customer = {term.record_id: term for term in terms}
    hits = []
    for table, record_type in (("orders", "order"), ("carts", "cart")):
        rows = session.execute(
            text(f"SELECT x.id, c.id FROM customers c JOIN {table} x ON x.customer_reference = c.customer_reference "
                 f"WHERE {_in_list(dialect, 'c.id', 'ids')} LIMIT :limit"),
            {"ids": _ids_parameter(dialect, by_customer), "limit": limit},
        ).all()
        for record_id, customer_id in rows:
            term = by_customer[customer_id]
            hits.append(Hit(record_type, record_id, _classify(tier, key, term.key), term.field, term.value,
                            True, term.key))
    return hits


def _tier_plan(key: str) -> list[Tier]:
    """The queries to run, best first; EXACT stands for the one range scan that finds exact and prefix."""
    plan = [Tier.EXACT]
    if len(key) >= MIN_CONTAINS:
        plan.append(Tier.CONTAINS)
    if len(key) >= MIN_SIMILAR:
        plan.append(Tier.SIMILAR)
    return plan


def collect_hits(session: Session, key: str, candidates: int) -> tuple[list[Hit], bool]:
    """Hits from every tier within the budget; True when the budget ran out (more may exist).

    The similar tier is a "did you mean": it runs only when no stronger tier found anything, so
    typo look-alikes never crowd real matches.
    """
    dialect = session.get_bind().dialect.name
    hits: list[Hit] = []
    for tier in _tier_plan(key):
        if tier == Tier.SIMILAR and hits:
            break
        parameters = tier_parameters(dialect, tier, key, candidates, session)
        for source in SOURCES:
            parameters["limit"] = candidates - len(hits)
            if parameters["limit"] <= 0:
                return hits, True
            hits.extend(_source_hits(session, source, tier, key, parameters))
    return hits, len(hits) >= candidates


def _best_hits(hits: Iterable[Hit]) -> dict[tuple[str, int], Hit]:
    best: dict[tuple[str, int], Hit] = {}
    for hit in hits:
        record = (hit.record_type, hit.record_id)
        if record not in best or hit.rank() < best[record].rank():
            best[record] = hit
    return best


# --- records and ranking -------------------------------------------------------------------------

def _summaries(session: Session, model, summary, ids: Sequence[int]) -> list:
    if not ids:
        return []
    dialect = session.get_bind().dialect.name
    table = model.__table__
    columns = [table.c[name] for name in summary.__dataclass_fields__]
    statement = select(*columns).where(text(_in_list(dialect, f"{table.name}.id", "ids")))
    rows = session.execute(statement, {"ids": _ids_parameter(dialect, ids)}).all()
    return [summary(*row) for row in rows]


def _order_rank(row: ResultRow) -> tuple:
    """Within a tier: active references first, then the most recent orders."""
    return (*row.hit.rank(), -row.record.placed_at.timestamp(), row.record.order_reference)


def _cart_rank(row: ResultRow) -> tuple:
    """Within a tier: active references first, then open carts, then the most recently changed."""
    cart = row.record
    return (*row.hit.rank(), cart.state != CartState.OPEN, -cart.updated_at.timestamp(), cart.key)


def _group(session: Session, model, summary, hits: dict[int, Hit], rank, shown: int, more: bool) -> Group:
    records = _summaries(session, model, summary, list(hits))
    rows = sorted((ResultRow(record, hits[record.id]) for record in records), key=rank)
    return Group(rows=rows[:shown], total=len(rows), more=more)


def search(session: Session, query: str, *, shown: int = 20, candidates: int = 200) -> SearchResults:
    """All orders and carts matching `query`, best tier first, at most `shown` rows per group."""
    key = matching_key(query)
    hits, more = collect_hits(session, key, candidates) if key else ([], False)
    best = _best_hits(hits)
    orders = {record_id: hit for (kind, record_id), hit in best.items() if kind == "order"}
    carts = {record_id: hit for (kind, record_id), hit in best.items() if kind == "cart"}
    return SearchResults(
        query=query,
        key=key,
        orders=_group(session, Order, OrderSummary, orders, _order_rank, shown, more),
        carts=_group(session, Cart, CartSummary, carts, _cart_rank, shown, more),
    )
