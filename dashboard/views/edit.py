"""Reference edits on cart and order pages, in place with htmx or as plain form posts.

Each route: load the record, ask the edit policy, check the input, check the version, then one
call to editing.apply_change and one commit. The answer is the references region (htmx) or the
whole page; errors keep what the agent typed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import auth, editing
from ..forms import ReferenceEditForm
from ..htmx import wants_fragment
from ..models import Cart, Order, Reference, Role, db
from ..references import InvalidValue, Kind, Source, check_text, clean_value
from ..tracking import identify_one
from .records import EDITABLE_KINDS, load_owner, page_template, record_page_context

bp = Blueprint("edit", __name__)


@dataclass
class PlannedChange:
    """The change a post asks for, worked out before anything is written."""

    kind: str
    new_value: str | None
    target: Reference | None  # the reference retired by the change, if any
    already_done: bool = False  # the record already looks as asked: a double click writes nothing
    stale: bool = False  # the reference was changed by someone else since the page was loaded
    already_retired: bool = False  # the reference was retired before the page was loaded: nothing to do
    current_value: str | None = None  # shown beside the agent's value on a conflict

    def done_message(self) -> str:
        return _("Reference retired.") if self.new_value is None else _("Saved.")


@dataclass
class Outcome:
    """What the references region says after a post: for which form, and how it went."""

    form_id: str
    status: int = 200
    errors: dict[str, str] = field(default_factory=dict)
    submitted: dict[str, str] = field(default_factory=dict)
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    conflict: dict[str, str | None] | None = None


def _respond(owner: Order | Cart, outcome: Outcome):
    if outcome.status == 200 and not wants_fragment("references"):
        # Post/redirect/get: a reload never posts twice.
        flash(outcome.message, "ok")
        for warning in outcome.warnings:
            flash(warning, "warning")
        return redirect(_page_url(owner))
    context = record_page_context(owner)
    context["outcome"] = outcome
    template = "partials/_references.html" if wants_fragment("references") else page_template(owner)
    return render_template(template, **context), outcome.status


def _page_url(owner: Order | Cart) -> str:
    if isinstance(owner, Order):
        return url_for("records.order", order_reference=owner.order_reference)
    return url_for("records.cart", cart_key=owner.key)


def _refuse(owner: Order | Cart, decision: editing.EditDecision, form_id: str):
    message = str(decision.message)
    auth.record_denied(message, record_type=editing.record_type(owner), record_key=editing.record_key(owner))
    return _respond(owner, Outcome(form_id, status=403, message=message))


def _tell_about_saved_value(owner: Order | Cart, change: PlannedChange, outcome: Outcome) -> None:
    """After a save: which carrier a tracking number belongs to (or that none does), and which other
    records hold the same value. Hints only: the value is saved either way."""
    value = change.new_value
    if value is None:
        return
    if change.kind == Kind.TRACKING:
        carrier = identify_one(value)
        if carrier is None:
            outcome.warnings.append(
                _("No carrier recognises this tracking number; it was saved anyway. Check it with the customer."))
        else:
            outcome.message += " " + _("Recognised as a %(courier)s tracking number (%(service)s).",
                                       courier=carrier.courier, service=carrier.service)
    for record_kind, key in editing.duplicates_elsewhere(db.session, owner, value):
        label = _("order") if record_kind == "order" else _("cart")
        outcome.warnings.append(_("The same value is also active on %(kind)s %(key)s.", kind=label, key=key))


def _check(owner: Order | Cart, decision: editing.EditDecision, form: ReferenceEditForm,
           outcome: Outcome, plan) -> PlannedChange | None:
    """Validate the post; fills outcome.errors and returns None when the agent must correct it."""
    if not form.validate_on_submit():
        outcome.errors = {name: "; ".join(map(str, errors)) for name, errors in form.errors.items()}
        return None
    reason = form.reason_text()
    if decision.reason_required and not reason:
        outcome.errors["reason"] = _("A supervisor change needs a reason.")
    try:
        check_text(reason)
    except InvalidValue as error:
        outcome.errors["reason"] = str(error)
    try:
        change = plan(owner, form)
    except InvalidValue as error:
        outcome.errors["value"] = str(error)
        return None
    return None if outcome.errors else change


def _conflict(outcome: Outcome, change: PlannedChange, version_missing: bool) -> Outcome:
    db.session.rollback()
    outcome.status = 409
    outcome.conflict = {"current": change.current_value, "mine": change.new_value}
    outcome.message = _conflict_message(change, version_missing)
    return outcome


def _conflict_message(change: PlannedChange, version_missing: bool) -> str:
    if change.already_retired:
        return _("This reference is already retired. Nothing was saved.")
    if version_missing:
        return _("This form has no record version; reload the page. Nothing was saved.")
    return _("Someone else changed this record since you opened it. Nothing was saved. "
             "Compare the values, then save yours again or keep the current one.")


def _edit(collection: str, record_key: str, form_id: str, plan):
    """The shared path of every edit route; `plan` turns the checked form into the change to make."""
    owner = load_owner(collection, record_key)
    decision = editing.edit_policy(current_user.role, owner)
    if not decision.allowed:
        return _refuse(owner, decision, form_id)
    form = ReferenceEditForm()
    outcome = Outcome(form_id, submitted={
        "value": form.value.data or "", "reason": form.reason.data or "", "kind": form.kind.data or "",
    })
    change = _check(owner, decision, form, outcome, plan)
    if change is None:
        outcome.status = 422
        return _respond(owner, outcome)
    if change.already_done:
        outcome.message = _("Already saved; nothing changed.")
        return _respond(owner, outcome)
    expected = form.version_number()
    if (change.already_retired or change.stale or expected is None
            or not editing.bump_version(db.session, owner, expected)):
        return _respond(owner, _conflict(outcome, change, expected is None and not change.stale))
    editing.apply_change(
        db.session, owner, kind=change.kind, new_value=change.new_value, target=change.target,
        source=Source.AGENT, event=auth.event("", reason=form.reason_text() or None),
    )
    db.session.commit()
    outcome.message = change.done_message()
    _tell_about_saved_value(owner, change, outcome)
    return _respond(owner, outcome)


def _active_same(owner: Order | Cart, kind: str, value: str) -> bool:
    return any(ref.active and ref.kind == kind and ref.value == value for ref in owner.references)


# Reference.id is an INTEGER column: 32 bits on PostgreSQL, which refuses a bigger number outright,
# as SQLite does one beyond 64 bits. No row has a bigger id, so such a URL is simply not found.
MAX_REFERENCE_ID = 2**31 - 1


def _owned_reference(owner: Order | Cart, reference_id: int) -> Reference:
    """The reference a URL names, if it belongs to `owner`; otherwise a 404. The one look-up by id."""
    reference = db.session.get(Reference, reference_id) if reference_id <= MAX_REFERENCE_ID else None
    owner_id = reference and (reference.order_id if isinstance(owner, Order) else reference.cart_id)
    if reference is None or owner_id != owner.id:
        abort(404, description=_("That reference does not belong to this record."))
    return reference


def plan_custom(owner: Order | Cart, form: ReferenceEditForm) -> PlannedChange:
    """Set, change or clear (empty value) the one custom order reference."""
    value = clean_value(form.value.data, allow_empty=True) or None
    current = editing.active_custom(db.session, owner)
    current_value = current.value if current else None
    return PlannedChange(Kind.CUSTOM, value, current, already_done=current_value == value,
                         current_value=current_value)


def plan_add(owner: Order | Cart, form: ReferenceEditForm) -> PlannedChange:
    kind = form.kind.data
    if kind not in EDITABLE_KINDS:
        raise InvalidValue(_("Choose the kind of reference."))
    value = clean_value(form.value.data)
    if _active_same(owner, kind, value):  # a double click: saved once, not refused
        return PlannedChange(kind, value, None, already_done=True)
    _refuse_same_reference(owner, kind, value, None)
    return PlannedChange(kind, value, None)


def _refuse_same_reference(owner: Order | Cart, kind: str, value: str, target: Reference | None) -> None:
    existing = editing.same_reference_on_record(owner, kind, value, target)
    if existing is not None:
        raise InvalidValue(_("This record already has “%(value)s”, the same reference written another way.",
                             value=existing.value))


def _replacement(owner: Order | Cart, target: Reference) -> Reference | None:
    """The active reference that took a retired one's place through changes, if any.

    A change retires the old row and adds the new one at the same moment by the same actor
    (editing.apply_change); another active reference of the same kind is not a replacement.
    """
    current = target
    while not current.active:
        current = next((ref for ref in owner.references
                        if ref.kind == current.kind and ref.id > current.id
                        and ref.created_at == current.retired_at and ref.created_by == current.retired_by), None)
        if current is None:
            return None
    return current


def _plan_on_retired(owner: Order | Cart, form: ReferenceEditForm, target: Reference,
                     value: str | None) -> PlannedChange:
    """A change (value) or retire (None) of a reference no longer active: it writes nothing, and
    the answer says why. The current value is that of the reference its changes led to, if any."""
    replacement = _replacement(owner, target)
    change = PlannedChange(target.kind, value, target, current_value=replacement.value if replacement else None)
    if form.version_number() == owner.version:
        # Nobody saved since the page was loaded, so it was retired before: neither a double click
        # nor someone else's change, and "someone else changed this record" would send the agent hunting.
        change.already_retired = True
    elif change.current_value == value:
        change.already_done = True  # retired meanwhile into what is asked: this very save repeated
    else:
        change.stale = True  # someone else's change or retire: a conflict, never silently revived
    return change


def plan_change(reference_id: int):
    def plan(owner: Order | Cart, form: ReferenceEditForm) -> PlannedChange:
        target = _owned_reference(owner, reference_id)
        value = clean_value(form.value.data)
        if not target.active:
            return _plan_on_retired(owner, form, target, value)
        _refuse_same_reference(owner, target.kind, value, target)
        return PlannedChange(target.kind, value, target, already_done=target.value == value,
                             current_value=target.value)
    return plan


def plan_retire(reference_id: int):
    def plan(owner: Order | Cart, form: ReferenceEditForm) -> PlannedChange:
        target = _owned_reference(owner, reference_id)
        if not target.active:
            return _plan_on_retired(owner, form, target, None)
        return PlannedChange(target.kind, None, target, current_value=target.value)
    return plan


COLLECTION_PATH = "/<any(orders, carts):collection>/<record_key>"


@bp.post(COLLECTION_PATH + "/custom-reference")
@auth.require_role(Role.AGENT)
def set_custom(collection: str, record_key: str):
    return _edit(collection, record_key, "custom", plan_custom)


@bp.post(COLLECTION_PATH + "/references")
@auth.require_role(Role.AGENT)
def add_reference(collection: str, record_key: str):
    return _edit(collection, record_key, "add", plan_add)


@bp.post(COLLECTION_PATH + "/references/<int:reference_id>")
@auth.require_role(Role.AGENT)
def change_reference(collection: str, record_key: str, reference_id: int):
    return _edit(collection, record_key, f"ref-{reference_id}", plan_change(reference_id))


@bp.post(COLLECTION_PATH + "/references/<int:reference_id>/retire")
@auth.require_role(Role.AGENT)
def retire_reference(collection: str, record_key: str, reference_id: int):
    return _edit(collection, record_key, f"retire-{reference_id}", plan_retire(reference_id))
