"""The audit log page, for supervisors and admins.

The log can hold millions of events, so pages are cut by keyset on `seq` (`?before=<seq>`), never
by OFFSET: every page costs one short index range scan, the first page and the ten-thousandth alike.
What is listed is decided by `AuditFilters` and `audit_query`, so filters, the CSV export and charts
can reuse the same query later.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import Blueprint, render_template, request
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from ..audit import unchained
from ..auth import require_role
from ..htmx import wants_fragment
from ..models import AuditEvent, AuditHead, Role, db

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
REGION_ID = "audit-events"

@dataclass(frozen=True)
class AuditFilters:
    """What a supervisor narrows the log to; an empty filter is the whole log.

    Every field is an exact match (each has an index that ends in `seq`, so a filtered page is
    still a range scan); the time range is half-open, `since <= occurred_at < until`.
    """

    actor: str | None = None
    action: str | None = None
    kind: str | None = None
    record_type: str | None = None
    record_key: str | None = None
    value: str | None = None  # the old or the new value
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list:
        conditions = []
        for column, wanted in (
            (AuditEvent.actor_name, self.actor),
            (AuditEvent.action, self.action),
            (AuditEvent.kind, self.kind),
            (AuditEvent.record_type, self.record_type),
            (AuditEvent.record_key, self.record_key),
        ):
            if wanted is not None:
                conditions.append(column == wanted)
        if self.value is not None:
            conditions.append(or_(AuditEvent.old_value == self.value, AuditEvent.new_value == self.value))
        if self.since is not None:
            conditions.append(AuditEvent.occurred_at >= self.since)
        if self.until is not None:
            conditions.append(AuditEvent.occurred_at < self.until)
        return conditions

    @property
    def empty(self) -> bool:
        return not self.conditions()


def audit_query(filters: AuditFilters) -> Select:
    """The events a filter selects, unordered and unlimited: pages, export and charts start here."""
    return select(AuditEvent).where(*filters.conditions())


@dataclass
class AuditPage:
    events: list[AuditEvent]
    before: int | None  # the `before` this page was asked for; None is the newest page
    older: int | None = None  # `before` of the next older page, None when this is the oldest
    newer: dict[str, int] | None = None  # url_for arguments of the next newer page, None when newest
    head_seq: int = 0  # events in the whole log (the chain head), counted without a scan
    filters: AuditFilters = field(default_factory=AuditFilters)

    unchained: set[int] = field(default_factory=set)  # seqs of events on this page the chain does not hold

    def outside_chain(self, event: AuditEvent) -> bool:
        """Written around Reference Desk (`audit verify` names it): numbered beyond the chain head
        (appends move the head in the same transaction as their events), or not linked to the
        event before it (a row the chain went on after stays below the head)."""
        return event.seq > self.head_seq or event.seq in self.unchained

    @property
    def outside_chain_count(self) -> int:
        return sum(1 for event in self.events if self.outside_chain(event))


def events_page(
    session: Session, filters: AuditFilters, before: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One page, newest first, of the events older than `before` (all when None)."""
    query = audit_query(filters)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    rows = list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(size + 1)))
    page = AuditPage(events=rows[:size], before=before, filters=filters)
    if len(rows) > size:
        page.older = rows[size - 1].seq
    if before is not None:
        page.newer = _newer_page(session, filters, rows[0].seq if rows else before - 1, size)
    page.head_seq = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0
    page.unchained = unchained(session, page.events)
    return page


def _newer_page(session: Session, filters: AuditFilters, newest_shown: int, size: int) -> dict[str, int] | None:
    """The page just above this one, as `before` of the event after its newest; {} is the first page."""
    newer = list(session.scalars(
        select(AuditEvent.seq)
        .where(*filters.conditions(), AuditEvent.seq > newest_shown)
        .order_by(AuditEvent.seq.asc())
        .limit(size + 1)
    ))
    if not newer:
        return None
    if len(newer) <= size:
        return {}
    return {"before": newer[size - 1] + 1}


def _before_argument() -> int | None:
    before = request.args.get("before", type=int)
    # Sequence numbers are 64-bit; anything outside is no page of this log: show the newest.
    return before if before is not None and 0 < before < 2**63 else None


@bp.route("/audit")
@require_role(Role.SUPERVISOR)
def log():
    page = events_page(db.session, AuditFilters(), _before_argument())
    context = {
        "page": page,
    }
    if wants_fragment(REGION_ID):
        return render_template("partials/_audit_rows.html", **context)
    return render_template("pages/audit.html", region_id=REGION_ID, **context)
