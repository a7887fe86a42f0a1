"""Words shown for kinds, fields, tiers and actions, through gettext so they can be translated."""
from __future__ import annotations

from flask import Flask
from flask import g
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from .formatting import TEMPLATE_HELPERS

FIELD_LABELS = {
    "custom": _l("Custom order reference"),
    "erp": _l("ERP number"),
    "shipment": _l("3PL shipment"),
    "tracking": _l("Tracking number"),
    "invoice": _l("Invoice"),
    "payment": _l("Payment"),
    "other": _l("Other reference"),
    "order_reference": _l("Order reference"),
    "cart_key": _l("Cart key"),
    "cart_uuid": _l("Cart uuid"),
    "cart_name": _l("Cart name"),
    "customer_reference": _l("Customer reference"),
    "email": _l("E-mail"),
}

TIER_LABELS = {
    "exact": _l("exact"),
    "prefix": _l("prefix"),
    "contains": _l("contains"),
    "similar": _l("similar"),
}

SOURCE_LABELS = {
    "agent": _l("agent"),
    "api": _l("API client"),
    "import": _l("import"),
    "spryker": _l("Spryker"),
}


ACTION_LABELS = {
    "reference.added": _l("Reference added"),
    "reference.changed": _l("Reference changed"),
    "reference.retired": _l("Reference retired"),
    "record.imported": _l("Record imported"),
    "auth.login": _l("Logged in"),
    "auth.login_failed": _l("Login failed"),
    "auth.denied": _l("Request denied"),
    "user.created": _l("User created"),
}

ACTOR_TYPE_LABELS = {
    "user": _l("user"),
    "api": _l("API client"),
    "system": _l("system"),
    "anonymous": _l("anonymous"),
}

RECORD_TYPE_LABELS = {
    "order": _l("order"),
    "cart": _l("cart"),
    "customer": _l("customer"),
    "user": _l("user"),
}


LABEL_TABLES = {
    "field_labels": FIELD_LABELS,
    "tier_labels": TIER_LABELS,
    "source_labels": SOURCE_LABELS,
    "action_labels": ACTION_LABELS,
    "actor_type_labels": ACTOR_TYPE_LABELS,
    "record_type_labels": RECORD_TYPE_LABELS,
}


_TRANSLATED: dict[str, dict[str, dict[str, str]]] = {}


def translated() -> dict[str, dict[str, str]]:
    """Every label table in the request's language, translated once per language and process when
    first needed (a results page looks labels up for every row; a static file never needs them).
    The catalogues do not change while the app runs."""
    if "labels" not in g:
        locale = str(get_locale())
        if locale not in _TRANSLATED:
            _TRANSLATED[locale] = {name: {key: str(text) for key, text in table.items()}
                                   for name, table in LABEL_TABLES.items()}
        g.labels = _TRANSLATED[locale]
    return g.labels


def init_app(app: Flask) -> None:
    # Globals rather than a context processor: imported macros see globals, not the context.
    app.jinja_env.globals.update(get_locale=get_locale, **TEMPLATE_HELPERS)

    app.context_processor(translated)
