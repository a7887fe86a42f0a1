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


LABEL_TABLES = {"field_labels": FIELD_LABELS, "tier_labels": TIER_LABELS, "source_labels": SOURCE_LABELS}


def init_app(app: Flask) -> None:
    # Globals rather than a context processor: imported macros see globals, not the context.
    app.jinja_env.globals.update(get_locale=get_locale, **TEMPLATE_HELPERS)

    @app.before_request
    def translate_labels() -> None:
        # Translated once per request; a results page looks labels up for every row.
        g.labels = {name: {key: str(text) for key, text in table.items()} for name, table in LABEL_TABLES.items()}

    @app.context_processor
    def labels() -> dict:
        return g.get("labels") or {}
