"""The audit log: append-only events in a hash chain, and its verification.

Each event's hash covers a canonical text of the event (fixed field order, ISO UTC times, JSON
escaping) and the hash of the event before it, so verification does not depend on the database,
its time zone or how it formats values. Editing, deleting or re-ordering any event breaks the chain.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import Connection, Dialect, select, update
from sqlalchemy.orm import Session

from .models import AuditEvent, AuditHead, utcnow

GENESIS_HASH = "0" * 64

# The fields covered by the hash, in the order they appear in the canonical text.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_type",
    "actor_name",
    "actor_role",
    "action",
    "record_type",
    "record_key",
    "kind",
    "old_value",
    "new_value",
    "reason",
    "detail",
    "request_id",
    "client_address",
    "prev_hash",
)


@dataclass(frozen=True)
class Actor:
    """Who did it, with name and role as they were at the time."""

    type: str  # user, api, system
    name: str
    role: str | None = None


SYSTEM = Actor("system", "system", None)


@dataclass
class EventData:
    action: str
    actor: Actor
    record_type: str | None = None
    record_key: str | None = None
    kind: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    reason: str | None = None
    detail: str | None = None
    request_id: str | None = None
    client_address: str | None = None
    occurred_at: datetime = field(default_factory=utcnow)


def compact_json(*, ensure_ascii: bool) -> Callable[[object], str]:
    """json.dumps(value, ensure_ascii=..., separators=(",", ":")) as a function made once.

    JSONEncoder.encode builds its C encoder again on every call, which costs as much as the
    encoding of a small event; bulk imports encode two per record.
    """
    reference = json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(",", ":"))
    make_encoder = json.encoder.c_make_encoder
    if make_encoder is None:  # a Python without json's C speedups
        return reference.encode
    encode_string = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encoder = make_encoder(None, reference.default, encode_string, None, ":", ",", False, False, True)
    return lambda value: "".join(encoder(value, 0))


_CANONICAL_JSON = compact_json(ensure_ascii=True)
_JSON_STRING = json.encoder.encode_basestring_ascii  # what that encoder writes for a str


@lru_cache(maxsize=64)  # bulk appends share one time
def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PreparedEvent(NamedTuple):
    """An event's fields between seq and prev_hash (HASHED_FIELDS order, occurred_at in UTC) and
    their canonical JSON: all that appending needs besides the event's place in the chain.

    The canonical text is `[seq,<middle>,"prev_hash"]`, so the JSON of the fields that do not depend
    on the chain can be made ahead, even in another process: a bulk import prepares its events
    while the batch before is written (demo load).
    """

    values: tuple
    middle: str


def prepare(event: EventData) -> PreparedEvent:
    """The one place an event's fields are put in hash order."""
    if event.occurred_at.tzinfo is None:
        # astimezone() would silently read a naive time as the server's local time.
        raise ValueError("naive datetimes are not stored; use utcnow()")
    actor = event.actor
    values = (event.occurred_at.astimezone(timezone.utc), actor.type, actor.name, actor.role, event.action,
              event.record_type, event.record_key, event.kind, event.old_value, event.new_value, event.reason,
              event.detail, event.request_id, event.client_address)
    return PreparedEvent(values, _middle(values))


class EventTemplate:
    """Events alike but for their record and detail (a bulk import's), prepared by filling in the
    canonical JSON that prepare() makes of one such event with placeholders: three string encodings
    per event instead of building and encoding all of it. The tests hold it to prepare()."""

    VARYING = ("record_type", "record_key", "detail")

    def __init__(self, action: str, actor: Actor, occurred_at: datetime) -> None:
        marks = {name: f"\ue000{name}\ue000" for name in self.VARYING}  # private-use characters: in no field
        sample = prepare(EventData(action=action, actor=actor, occurred_at=occurred_at, **marks))
        at = [sample.values.index(marks[name]) for name in self.VARYING]
        if at != sorted(at):
            raise RuntimeError("EventTemplate.VARYING must follow HASHED_FIELDS order")
        values = sample.values
        self._values = (values[:at[0]], values[at[0] + 1:at[1]], values[at[1] + 1:at[2]], values[at[2] + 1:])
        pieces, rest = [], sample.middle
        for name in self.VARYING:
            before, rest = rest.split(_JSON_STRING(marks[name]))
            pieces.append(before)
        self._pieces = (*pieces, rest)

    def prepare(self, record_type: str, record_key: str, detail: str) -> PreparedEvent:
        head, second, third, tail = self._values
        first_text, second_text, third_text, tail_text = self._pieces
        return PreparedEvent(
            (*head, record_type, *second, record_key, *third, detail, *tail),
            f"{first_text}{_JSON_STRING(record_type)}{second_text}{_JSON_STRING(record_key)}"
            f"{third_text}{_JSON_STRING(detail)}{tail_text}")


def _middle(values: Sequence) -> str:
    """The canonical JSON of the fields between seq and prev_hash (occurred_at first), without the brackets."""
    text_values = list(values)
    text_values[0] = _format_time(values[0])
    return _CANONICAL_JSON(text_values)[1:-1]


def _chained_text(seq: int, middle: str, prev_hash: str) -> str:
    """The JSON array of all HASHED_FIELDS."""
    return f"[{_json_value(seq)},{middle},{_json_value(prev_hash)}]"


def _json_value(value: object) -> str:
    """What the encoder writes for `value`; ints and strs (a real seq and hash) without its slow path."""
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is str:
        return _JSON_STRING(value)
    return _CANONICAL_JSON(value)


def _chained_hash(seq: int, middle: str, prev_hash: str) -> str:
    return hashlib.sha256(_chained_text(seq, middle, prev_hash).encode("ascii")).hexdigest()


def canonical_text(row: dict) -> str:
    return _chained_text(row["seq"], _middle([row[name] for name in HASHED_FIELDS[1:-1]]), row["prev_hash"])


def event_hash(row: dict) -> str:
    return hashlib.sha256(canonical_text(row).encode("ascii")).hexdigest()


_TIME_AT = HASHED_FIELDS.index("occurred_at")


def _claim_sequence(session: Session, count: int) -> tuple[int, str]:
    """Reserve `count` sequence numbers; returns the last seq and hash before them.

    The UPDATE comes first so that the lock is held before the head is read (see AuditHead).
    """
    head = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + count)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit chain head is missing: run the schema set-up")
    last_seq, prev_hash = head.seq - count, head.hash
    # The app's role may INSERT events, so rows written around the app can hold the next numbers.
    # The chain then goes on after them, chained to the last, rather than failing every append
    # (and with them every login and edit); rows far ahead are left where they are. `audit verify`
    # names the first such row, the audit page marks them all.
    start = last_seq + 1
    while (taken := session.execute(
        select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.seq >= start, AuditEvent.seq < start + count)
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).one_or_none()) is not None:
        start, prev_hash = taken.seq + 1, taken.hash
    if start != last_seq + 1:
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=start + count - 1))
    return start - 1, prev_hash


def unchained(session: Session, events: Sequence[AuditEvent]) -> set[int]:
    """The seqs of those `events` that the chain does not hold: whose hash is not that of their own
    content, or whose prev_hash is not the hash of the event numbered just before them."""
    before = dict(session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_([event.seq - 1 for event in events]))
    ).all())
    before[0] = GENESIS_HASH
    return {event.seq for event in events
            if event.prev_hash != before.get(event.seq - 1) or not _hash_matches(event)}


def _hash_matches(event: AuditEvent) -> bool:
    return event_hash({name: getattr(event, name) for name in HASHED_FIELDS}) == event.hash


def append_events(session: Session, events: Iterable[EventData | PreparedEvent]) -> list[list]:
    """Chain and insert events in the caller's transaction; the caller commits once, with the change.

    Returns each event's stored values in STORED_FIELDS order.
    """
    pending = [event if isinstance(event, PreparedEvent) else prepare(event) for event in events]
    if not pending:
        return []
    last_seq, prev_hash = _claim_sequence(session, len(pending))
    rows = []
    for seq, (values, middle) in enumerate(pending, start=last_seq + 1):
        this_hash = _chained_hash(seq, middle, prev_hash)
        rows.append([seq, *values, prev_hash, this_hash])
        prev_hash = this_hash
    _insert_rows(session, rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev_hash))
    return rows


STORED_FIELDS = (*HASHED_FIELDS, "hash")


def _insert_rows(session: Session, rows: list[list]) -> None:
    """One executemany through the driver, values bound as the column types bind them.

    Imports chain a million events; SQLAlchemy's per-row parameter processing cost several
    times the hashing itself, so rows go to the driver as tuples.
    """
    connection = session.connection()
    dialect = connection.dialect
    bind_time = _time_binder(dialect)
    times: dict[datetime, object] = {}  # the events of one append mostly share their time
    tuples = []
    for values in rows:
        moment = values[_TIME_AT]
        if moment not in times:
            times[moment] = bind_time(moment)
        tuples.append((*values[:_TIME_AT], times[moment], *values[_TIME_AT + 1:]))
    if dialect.name == "postgresql" and len(tuples) >= COPY_FROM_ROWS:
        _copy_rows(connection, tuples)
    else:
        connection.exec_driver_sql(_insert_sql(dialect), tuples)


COPY_FROM_ROWS = 100  # PostgreSQL: an INSERT per row costs ~60 µs there; COPY a few, plus a round trip more


def _copy_rows(connection: Connection, tuples: list[tuple]) -> None:
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in STORED_FIELDS)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {quote(AuditEvent.__tablename__)} ({columns}) FROM STDIN") as copy:
        for row in tuples:
            copy.write_row(row)


def _time_binder(dialect: Dialect) -> Callable[[datetime], object]:
    column_type = AuditEvent.__table__.c.occurred_at.type
    return column_type.dialect_impl(dialect).bind_processor(dialect) or (lambda moment: moment)


def _insert_sql(dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    placeholder = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
    columns = ", ".join(quote(name) for name in STORED_FIELDS)
    values = ", ".join(placeholder for _ in STORED_FIELDS)
    return f"INSERT INTO {quote(AuditEvent.__tablename__)} ({columns}) VALUES ({values})"


def append_event(session: Session, event: EventData) -> dict:
    return dict(zip(STORED_FIELDS, append_events(session, [event])[0], strict=True))


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS_HASH))


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    last_hash: str | None = None  # kept outside the database, it proves the chain was not rewritten


def _rows(session: Session) -> Iterator[dict]:
    columns = [getattr(AuditEvent, name) for name in HASHED_FIELDS] + [AuditEvent.hash, AuditEvent.id]
    result = session.execute(
        select(*columns).order_by(AuditEvent.seq).execution_options(yield_per=5000)
    )
    for row in result:
        yield row._asdict()


def _head(session: Session) -> tuple[int, str] | None:
    # A fresh read, never the identity map: verification must see the head as it is now.
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    return None if row is None else (row.seq, row.hash)


def verify_chain(session: Session) -> VerifyResult:
    """Walk the whole chain; report the first event that is missing, edited or out of place.

    Appends may commit while the walk runs (it reads one snapshot, the head is read in others),
    so the head is read before and after it: the last event walked must lie between the two.
    """
    head_before = _head(session)
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for row in _rows(session):
        seq = row["seq"]
        if seq != expected_seq:
            return VerifyResult(False, checked, f"event {expected_seq} is missing (next is {seq}): deleted, "
                                                f"or event {seq} was written around the app", expected_seq)
        if row["prev_hash"] != prev_hash:
            return VerifyResult(False, checked, f"event {seq} does not follow event {seq - 1}: "
                                                "written around the app, or events re-ordered", seq)
        if event_hash(row) != row["hash"]:
            return VerifyResult(False, checked,
                                f"event {seq} was altered or written around the app (hash mismatch)", seq)
        prev_hash, expected_seq, checked = row["hash"], seq + 1, checked + 1
    last_seq = expected_seq - 1
    if head_before is None:
        return VerifyResult(True, checked, last_hash=prev_hash)
    before_seq, before_hash = head_before
    if last_seq < before_seq or (last_seq == before_seq and prev_hash != before_hash):
        return VerifyResult(
            False, checked, f"events after {last_seq} are missing (chain head is at {before_seq})", last_seq + 1
        )
    if last_seq > before_seq:
        after_seq, after_hash = _head(session) or (0, GENESIS_HASH)
        if last_seq > after_seq or (last_seq == after_seq and prev_hash != after_hash):
            return VerifyResult(
                False, checked, f"event {after_seq + 1} lies beyond the chain head (at {after_seq})", after_seq + 1
            )
    return VerifyResult(True, checked, last_hash=prev_hash)
