"""The read side: find orders and carts by any reference, in tiers, and say why each matched.

Tiers, best first: exact key, prefix, contains (3+ characters), similar (one typo, 6+ characters).
Every tier reads an index: the B-tree on `key` for exact, prefix (a byte-wise range, no LIKE) and
similar (the query's one-edit variants, looked up exactly); FTS5 trigram (SQLite) or pg_trgm GIN
(PostgreSQL) for contains. Typed input only ever reaches the database as a bound parameter.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from string import ascii_lowercase, digits

from sqlalchemy import Integer, and_, func, select, text
from sqlalchemy.orm import Session

from .references import highlight_span, matching_key
from .models import Cart, CartState, Customer, Order, Reference, SearchTerm

MIN_CONTAINS = 3
MIN_SIMILAR = 6
# Highest code point: every key that starts with k sorts between k and k + TOP (UTF-8 and C collation).
TOP = "\U0010ffff"
TYPO_ALPHABET = ascii_lowercase + digits


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
    is_reference: bool

    def rank(self) -> tuple[int, int]:
        return (self.tier, 0 if self.active else 1)

    def match_in_key(self, query_key: str) -> tuple[int, int] | None:
        """Start and length of the matched part within this hit's key, for highlighting."""
        if self.tier == Tier.SIMILAR:
            return None
        start = self.key.find(query_key)
        return (start, len(query_key)) if start >= 0 else None


@dataclass
class ResultRow:
    record: Order | Cart
    hit: Hit

    def highlight(self, query_key: str) -> tuple[int, int] | None:
        """The slice of the value as entered to mark, or None to mark nothing."""
        match = self.hit.match_in_key(query_key)
        return highlight_span(self.hit.value, *match) if match else None


@dataclass
class Group:
    rows: list[ResultRow] = field(default_factory=list)
    total: int = 0
    more: bool = False  # the candidate limit was reached: total is a lower bound


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


def one_edit_variants(key: str) -> set[str]:
    """Every key one typo away: a character wrong, missing, extra, or two swapped."""
    alphabet = set(TYPO_ALPHABET) | set(key)
    variants: set[str] = set()
    for index in range(len(key) + 1):
        head, tail = key[:index], key[index:]
        variants.update(head + char + tail for char in alphabet)  # agent missed a character
        if tail:
            variants.add(head + tail[1:])  # agent typed one too many
            variants.update(head + char + tail[1:] for char in alphabet)  # one wrong
        if len(tail) > 1:
            variants.add(head + tail[1] + tail[0] + tail[2:])  # two swapped
    variants.discard(key)
    return variants


def _escape_like(text_value: str) -> str:
    return text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tier_condition(session: Session, model, tier: Tier, key: str):
    column = model.key
    if tier == Tier.EXACT:
        return column == key
    if tier == Tier.PREFIX:
        return and_(column > key, column < key + TOP)
    if tier == Tier.CONTAINS:
        not_prefix = func.substr(column, 1, len(key)) != key
        if session.get_bind().dialect.name == "sqlite":
            fts = "references_fts" if model is Reference else "search_terms_fts"
            # Keys hold only letters and digits, so the pattern has no wildcard of the user's;
            # the trigram index answers LIKE, and instr() keeps the check exact.
            matching = (
                text(f"SELECT rowid FROM {fts} WHERE key LIKE :pattern")
                .bindparams(pattern=f"%{key}%")
                .columns(rowid=Integer)
            )
            return and_(model.id.in_(matching), func.instr(column, key) > 0, not_prefix)
        return and_(column.like(f"%{_escape_like(key)}%", escape="\\"), not_prefix)
    return column.in_(sorted(one_edit_variants(key)))


def _tiers_for(key: str) -> list[Tier]:
    tiers = [Tier.EXACT, Tier.PREFIX]
    if len(key) >= MIN_CONTAINS:
        tiers.append(Tier.CONTAINS)
    if len(key) >= MIN_SIMILAR:
        tiers.append(Tier.SIMILAR)
    return tiers


def reference_statement(session: Session, key: str, tier: Tier, limit: int):
    """The query one tier runs over references (public so tests can check its plan)."""
    return (
        select(Reference.order_id, Reference.cart_id, Reference.kind, Reference.value,
               Reference.active, Reference.key)
        .where(_tier_condition(session, Reference, tier, key))
        .limit(limit)
    )


def term_statement(session: Session, key: str, tier: Tier, limit: int):
    """The query one tier runs over records' own fields (public so tests can check its plan)."""
    return (
        select(SearchTerm.record_type, SearchTerm.record_id, SearchTerm.field,
               SearchTerm.value, SearchTerm.key)
        .where(_tier_condition(session, SearchTerm, tier, key))
        .limit(limit)
    )


def _reference_hits(session: Session, key: str, tier: Tier, limit: int) -> list[Hit]:
    hits = []
    statement = reference_statement(session, key, tier, limit)
    for order_id, cart_id, kind, value, active, ref_key in session.execute(statement):
        record_type, record_id = ("order", order_id) if order_id is not None else ("cart", cart_id)
        hits.append(Hit(record_type, record_id, tier, kind, value, active, ref_key, True))
    return hits


def _term_hits(session: Session, key: str, tier: Tier, limit: int) -> list[Hit]:
    statement = term_statement(session, key, tier, limit)
    hits: list[Hit] = []
    customer_terms: list[tuple] = []
    for record_type, record_id, field_name, value, term_key in session.execute(statement):
        if record_type == "customer":
            customer_terms.append((record_id, field_name, value, term_key))
        else:
            hits.append(Hit(record_type, record_id, tier, field_name, value, True, term_key, False))
    hits.extend(_customer_hits(session, customer_terms, tier, limit))
    return hits


def _customer_hits(session: Session, terms: list[tuple], tier: Tier, limit: int) -> list[Hit]:
    """A matching customer field leads to that customer's orders and carts."""
    if not terms:
        return []
    by_customer = {customer_id: (field_name, value, key) for customer_id, field_name, value, key in terms}
    references = dict(
        session.execute(
            select(Customer.customer_reference, Customer.id).where(Customer.id.in_(by_customer))
        ).all()
    )
    hits = []
    for model, record_type in ((Order, "order"), (Cart, "cart")):
        rows = session.execute(
            select(model.id, model.customer_reference)
            .where(model.customer_reference.in_(references))
            .limit(limit)
        )
        for record_id, customer_reference in rows:
            field_name, value, key = by_customer[references[customer_reference]]
            hits.append(Hit(record_type, record_id, tier, field_name, value, True, key, False))
    return hits


def _best_hits(hits: Iterable[Hit]) -> dict[tuple[str, int], Hit]:
    best: dict[tuple[str, int], Hit] = {}
    for hit in hits:
        record = (hit.record_type, hit.record_id)
        if record not in best or hit.rank() < best[record].rank():
            best[record] = hit
    return best


def _order_rank(row: ResultRow) -> tuple:
    return (*row.hit.rank(), -row.record.placed_at.timestamp(), row.record.order_reference)


def _cart_rank(row: ResultRow) -> tuple:
    cart = row.record
    return (*row.hit.rank(), cart.state != CartState.OPEN, -cart.updated_at.timestamp(), cart.key)


def _group(session: Session, model, hits: dict[int, Hit], rank, shown: int, capped: bool) -> Group:
    records = session.scalars(select(model).where(model.id.in_(hits))).all() if hits else []
    rows = sorted((ResultRow(record, hits[record.id]) for record in records), key=rank)
    return Group(rows=rows[:shown], total=len(rows), more=capped)


def search(session: Session, query: str, *, shown: int = 20, candidates: int = 200) -> SearchResults:
    """All orders and carts matching `query`, best tier first, at most `shown` rows per group."""
    key = matching_key(query)
    hits: list[Hit] = []
    capped = False
    if key:
        for tier in _tiers_for(key):
            found = _reference_hits(session, key, tier, candidates) + _term_hits(session, key, tier, candidates)
            capped = capped or len(found) >= candidates
            hits.extend(found)
    best = _best_hits(hits)
    orders = {record_id: hit for (kind, record_id), hit in best.items() if kind == "order"}
    carts = {record_id: hit for (kind, record_id), hit in best.items() if kind == "cart"}
    return SearchResults(
        query=query,
        key=key,
        orders=_group(session, Order, orders, _order_rank, shown, capped),
        carts=_group(session, Cart, carts, _cart_rank, shown, capped),
    )
