"""Display helpers for templates, in Python: a results page calls them hundreds of times, and
Jinja macros and Babel's pattern parsing cost milliseconds there. Every value is escaped."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from babel.numbers import format_currency as babel_format_currency
from flask import g
from flask_babel import get_locale
from markupsafe import Markup, escape

_SAMPLE = 1234567.89


@lru_cache(maxsize=256)
def _currency_layout(currency: str, locale: str) -> tuple[str, str, str, str]:
    """Prefix, suffix, group and decimal separators of the locale's currency format."""
    sample = babel_format_currency(_SAMPLE, currency, locale=locale)
    first, last = sample.index("1"), sample.rindex("9")
    digits = sample[first:last + 1]  # e.g. "1,234,567.89" or "1.234.567,89"
    return sample[:first], sample[last + 1:], digits[1], digits[-3]


def money(minor: int | None, currency: str) -> str:
    """Minor units as the locale writes money: 273839 EUR is "€2,738.39" in English."""
    if "locale" not in g:  # get_locale() walks Flask-Babel's context on every call
        g.locale = str(get_locale())
    prefix, suffix, group, decimal = _currency_layout(currency, g.locale)
    amount = (minor or 0) / 100
    number = f"{abs(amount):,.2f}".replace(",", "\0").replace(".", decimal).replace("\0", group)
    return f"{'-' if amount < 0 else ''}{prefix}{number}{suffix}"


def when(moment: datetime | None) -> Markup:
    if moment is None:
        return Markup("–")
    # Both parts are made here from a datetime: nothing in them needs escaping.
    return Markup(f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M} UTC</time>')


def highlighted(value: str, span: tuple[int, int] | None) -> Markup:
    """The matched part of a value as entered in <mark>; every piece escaped."""
    if not span:
        return escape(value)
    start, end = span
    return escape(value[:start]) + Markup("<mark>") + escape(value[start:end]) + Markup("</mark>") + escape(value[end:])


def state_badge(state: str) -> Markup:
    css = escape(str(state).lower().replace(" ", "-"))
    return Markup(f'<span class="badge state-{css}">') + escape(state) + Markup("</span>")


TEMPLATE_HELPERS = {"money": money, "when": when, "highlighted": highlighted, "state_badge": state_badge}
