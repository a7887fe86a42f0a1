"""Demo data: Spryker's 78 carts plus a deterministic order history of any size.

`flask --app wsgi demo load [--orders N] [--seed S]` imports the Spryker carts, creates one demo
user per role, then generates customers, carts and orders with references in the shapes the real
systems use. The history is cut into blocks of BLOCK orders; each block is a pure function of
(seed, anchor, block number), so a run can stop anywhere and a later run with the same seed, or a
larger --orders, continues exactly where the data ends.

Speed: a million orders mean ~8 million rows. Rows are built as plain tuples with precomputed ids,
and the batch's `record.imported` audit events with their JSON (audit.PreparedEvent), in a second
process for big loads; the writer chains the events' hashes and writes each batch in one
transaction through the driver's bulk paths: executemany on SQLite with the FTS5 triggers swapped
for one set-based insert per batch, COPY on PostgreSQL.
"""
from __future__ import annotations

import bisect
import csv
import gc
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import secrets
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from flask import current_app
from sqlalchemy import Connection, Engine, Index, create_engine, insert, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import AddConstraint, CreateIndex

from . import audit, tracking
from .indexing import cart_fields, customer_fields, order_fields, reindex, terms
from .integrations.spryker import CART_UUID_NAMESPACE, ImportReport, import_carts_file
from .models import AuditEvent, CartState, Customer, Order, Role, User, db
from .references import Kind, Source, matching_key
from .schema import TRIGRAM_INDEXED, configure_sqlite, postgres_trigram_index

DEMO_ACTOR = audit.Actor("system", "demo-generator", None)
GENERATOR_VERSION = 2  # recorded with every run; bump when the generated history changes

BLOCK = 1000  # orders per generation unit
CUSTOMERS_PER_BLOCK = 60  # ~17 orders per customer
CARTS_PER_BLOCK = {CartState.ORDERED: 140, CartState.OPEN: 60, CartState.LOCKED: 25, CartState.DELETED: 25}
CARTS_IN_BLOCK = sum(CARTS_PER_BLOCK.values())
BATCH_ORDERS = 20_000  # orders per transaction: fewer, larger commits rewrite fewer pages
COLLECT_EVERY = 10  # batches between two runs of the cyclic garbage collector during a load
WORKER_MIN_ORDERS = 20_000  # below this, starting worker processes costs more than they save
WORKERS = 2  # processes that make and write batches in turn: one writes while the other generates
INDEX_BUILDERS = 2  # PostgreSQL connections that rebuild indexes after a big load
BIG_LOAD_ORDERS = 50_000  # from this size (and doubling the data) PostgreSQL rebuilds rather than maintains

ORDER_NUMBER_BASE = 1000  # the first generated order is DE--1000 (or AT--1000, US--1000)
CUSTOMER_NUMBER_BASE = 100  # above the Spryker demo customers DE--1 ... DE--34
CART_NUMBER_BASE = 1000  # above the data-import keys quote-1 ... quote-78
HISTORY_SECONDS = 730 * 86400
DAY = 86400
CREATED_BY = DEMO_ACTOR.name

DEMO_USERS = (("demo-agent", Role.AGENT), ("demo-supervisor", Role.SUPERVISOR), ("demo-admin", Role.ADMIN))
USERS_FILE_NAME = "demo-users.txt"
RUN_ACTION = "demo.load"
IMPORTED_ACTION = "record.imported"

# ----------------------------------------------------------------------------- names and shapes

STORES = (("DE", "EUR"), ("AT", "EUR"), ("US", "USD"))
STORE_WEIGHTS = (0.6, 0.8, 1.0)  # cumulative: DE 60 %, AT 20 %, US 20 %
FIRST_NAMES = (
    ("Jana", "Lukas", "Sophie", "Jürgen", "Maximilian", "Özlem", "Anja", "Felix", "Marie", "Björn", "Katrin", "Tobias"),
    ("Lena", "Florian", "Theresa", "Matthias", "Vanessa", "Dominik", "Birgit", "Stefan", "Johanna", "Lukas"),
    ("Emily", "James", "Olivia", "Michael", "Ava", "Daniel", "Chloe", "Ryan", "Grace", "Ethan", "Zoë", "Noah"),
)
LAST_NAMES = (
    ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Keller",
     "Krüger", "Öztürk", "Schäfer", "Groß"),
    ("Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer", "Hofer", "Leitner"),
    ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia", "Wilson", "Anderson",
     "O'Connor", "Nguyen"),
)
COMPANY_TRADES = (
    ("Haustechnik", "Bürobedarf", "Elektro", "Logistik", "Werkzeuge", "Gastro", "Baustoffe"),
    ("Installationen", "Bürotechnik", "Elektrotechnik", "Handel", "Holzbau"),
    ("Supply", "Tools", "Office Solutions", "Electric", "Hospitality", "Builders"),
)
COMPANY_FORMS = (("GmbH", "GmbH & Co. KG", "AG", "e.K."), ("GmbH", "KG", "OG"), ("Inc.", "LLC", "Corp."))
MAIL_DOMAINS = (
    ("web.de", "gmx.de", "t-online.de"), ("gmx.at", "aon.at", "chello.at"), ("gmail.com", "outlook.com", "yahoo.com"),
)
ASCII_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ë": "e", "'": "", " ": ""})
CART_NAMES = ("My Cart", "Shopping cart", "Weekly order", "Office supplies", "Büro Nachbestellung", "Site B",
              "Q3 restock", "Werkstatt", "Wishlist", "Kitchen")


class DemoRandom(random.Random):
    """random.Random with the generator's draws made cheaply. randrange, choice and choices check
    their arguments on every call and cost 2 to 8 times a random(); a million orders make ~40 million
    draws, and the generator is half of a demo load's CPU. Every draw is one random() call."""

    def below(self, high: int) -> int:
        """0 <= x < high, as randrange(high)."""
        return int(self.random() * high)

    def between(self, low: int, high: int) -> int:
        """low <= x < high, as randrange(low, high)."""
        return low + int(self.random() * (high - low))

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.random() * len(options))]

    def weighted(self, cum_weights: Sequence[float]) -> int:
        """An index drawn by cumulative weights, as choices(range(n), cum_weights=...)[0]."""
        return bisect.bisect(cum_weights, self.random() * cum_weights[-1])


# (weight, shape): the purchase-order numbers buyers type into Spryker's custom order reference.
PURCHASE_ORDER_SHAPES: tuple[tuple[int, Callable[[DemoRandom, int], str]], ...] = (
    (30, lambda r, y: f"PO-{y}-{r.between(1, 10**6):06d}"),
    (20, lambda r, y: f"45{r.below(10**8):08d}"),  # SAP purchase orders: 10 digits from 45...
    (10, lambda r, y: f"PO {r.between(10000, 99999)}/{r.pick('ABCDEFGH')}"),
    (8, lambda r, y: f"po-{r.below(10**5):05d}"),
    (8, lambda r, y: f"Bestellung {r.between(1000, 99999)}"),
    (6, lambda r, y: f"KST 4711/{y}-{r.between(1, 1000):03d}"),
    (5, lambda r, y: f"order #{r.between(1000, 99999)}"),
    (5, lambda r, y: f"{y}/{r.between(1, 13):02d}/{r.between(1, 10000):04d}"),
    (3, lambda r, y: f"Auftrag {r.pick(('Lager', 'Filiale', 'Baustelle'))} {r.between(1, 99)}"),
    (2, lambda r, y: f"Bestellung Nr. {r.pick('ÄÖÜ')}-{r.between(1, 100)}"),
    (1, lambda r, y: f"Commande n° {y}-{r.between(1, 1000)}"),
    (1, lambda r, y: f"ＰＯ{r.between(10000, 99999)}"),  # typed with a full-width keyboard layout
)
PO_CUM_WEIGHTS = tuple(itertools.accumulate(weight for weight, _ in PURCHASE_ORDER_SHAPES))

# Order status (Spryker OMS state of the order's items) by age in days.
STATUS_BY_AGE: tuple[tuple[float, tuple[str, ...], tuple[float, ...]], ...] = (
    (1, ("new", "paid", "exported"), (4, 8, 10)),
    (4, ("paid", "exported", "shipped", "canceled"), (1, 4, 9.7, 10)),
    (14, ("shipped", "delivered", "canceled", "returned"), (4, 9.5, 9.9, 10)),
    (float("inf"), ("delivered", "closed", "canceled", "returned", "refunded"), (55, 85, 92, 97, 100)),
)
FULFILLED = frozenset({"shipped", "delivered", "closed", "returned", "refunded"})
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DETAIL_JSON = audit.compact_json(ensure_ascii=False)
MIXED = ALNUM + "abcdefghijklmnopqrstuvwxyz"


# ----------------------------------------------------------------------------- tracking numbers


class TrackingNumbers:
    """DHL Express, UPS and DPD numbers whose check digits pass the carriers' rules.

    tracking.py's generators resolve and re-validate every number (about 0.15 ms each); a
    million orders need ~850,000 numbers, so the check characters are computed here. tracking.py
    stays the authority: on creation this class compares itself with tracking.py's generators and
    refuses to run if any number differs, and the tests identify every generated number.
    """

    UPS_SHIPPERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "DE": ("A4X392", "7W2R07"), "AT": ("E7Y118",), "US": ("0F6A45", "1X9V33", "9W8T21"),
    }
    UPS_SERVICES = ("03", "01", "11")  # ground, next day air, standard
    DPD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def __init__(self) -> None:
        self._ups_values = {char: int(char) if char.isdigit() else (ord(char) - 3) % 10 for char in ALNUM}
        self._check_against_tracking()

    def dhl_express(self, serial: int) -> str:
        serial %= 10**9
        return f"{serial:09d}{serial % 7}"

    def ups(self, shipper: str, service: str, package: int) -> str:
        serial = f"{shipper}{service}{package % 10**7:07d}"
        values = self._ups_values
        total = sum(values[char] * (2 if index % 2 else 1) for index, char in enumerate(serial))
        return f"1Z{serial}{(10 - total % 10) % 10}"

    def dpd(self, parcel: int) -> str:
        serial = f"{parcel % 10**14:014d}"
        value = 36  # ISO 7064 hybrid MOD 37,36
        for char in serial:
            value += ord(char) - 48
            if value > 36:
                value -= 36
            value *= 2
            if value > 36:
                value -= 37
        value = 37 - value
        return serial + self.DPD_ALPHABET[0 if value == 36 else value]

    def _check_against_tracking(self) -> None:
        samples = range(0, 10**9, 10**9 // 23 + 7)
        pairs = [(self.dhl_express(n), tracking.dhl_express_number(n)) for n in samples]
        pairs += [(self.dpd(n * 10**5 + n), tracking.dpd_number(n * 10**5 + n)) for n in samples]
        pairs += [
            (self.ups(shipper, service, n % 10**7), tracking.ups_number(shipper, service, n % 10**7))
            for shippers in self.UPS_SHIPPERS.values() for shipper in shippers
            for service in self.UPS_SERVICES for n in samples[:4]
        ]
        wrong = [(ours, theirs) for ours, theirs in pairs if ours != theirs]
        if wrong:
            raise RuntimeError(f"demo tracking numbers disagree with tracking.py: {wrong[:3]}")


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class CustomerPlan:
    reference: str
    store: int
    email: str
    first_name: str
    last_name: str
    company: str | None
    po_shape: int

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


# A reference to write: (kind, value, source, created_ts, retired_ts or None)
RefPlan = tuple[str, str, str, int, int | None]
# Kinds and sources as plain strings: the database drivers take exact str only, and str() of an
# enum member is a Python-level call, five times per order.
KIND = SimpleNamespace(**{kind.name: kind.value for kind in Kind})
SOURCE = SimpleNamespace(**{source.name: source.value for source in Source})


class CartPlan:
    __slots__ = (
        "created",
        "custom",
        "customer",
        "is_default",
        "items",
        "key",
        "name",
        "refs",
        "row_id",
        "state",
        "store",
        "total",
        "units",
        "updated",
    )

    def __init__(self, key: str, customer: CustomerPlan, store: int, state: str, created: int, updated: int) -> None:
        self.key, self.customer, self.store, self.state = key, customer, store, state
        self.created, self.updated = created, updated
        self.name, self.is_default = "", False
        self.items = self.units = self.total = 0
        self.refs: list[RefPlan] = []
        self.custom: str | None = None  # the active custom reference, carried onto the order
        self.row_id = 0


class OrderPlan:
    __slots__ = ("cart", "custom", "customer", "items", "number", "placed", "refs", "status", "store", "total")

    def __init__(self, number: int, customer: CustomerPlan, store: int, placed: int) -> None:
        self.number, self.customer, self.store, self.placed = number, customer, store, placed
        self.status, self.items, self.total = "new", 0, 0
        self.cart: CartPlan | None = None
        self.refs: list[RefPlan] = []
        self.custom: str | None = None

    @property
    def reference(self) -> str:
        return f"{STORES[self.store][0]}--{self.number}"


@dataclass
class BlockPlan:
    customers: list[CustomerPlan]
    orders: list[OrderPlan]
    carts_at: list[list[CartPlan]]  # per position: carts created then, written with that order


def _pick_store(rng: DemoRandom) -> int:
    draw = rng.random()
    return 0 if draw < STORE_WEIGHTS[0] else 1 if draw < STORE_WEIGHTS[1] else 2


def _email(first: str, last: str, number: int, domain: str) -> str:
    return f"{first}.{last}{number}@{domain}".lower().translate(ASCII_FOLD)


def _domain(*words: str, tld: str) -> str:
    return "-".join(word.lower().translate(ASCII_FOLD) for word in words) + "." + tld


# Bounded, so memory does not grow with the number of orders; 65,536 customers (~25 MB) are a million
# orders' worth, and every order draws a customer: a miss costs more than the rest of its order.
@lru_cache(maxsize=65536)
def customer_plan(seed: int, index: int) -> CustomerPlan:
    """Generated customer number `index`; any block may need any earlier customer."""
    rng = DemoRandom(seed * 1_000_003 + index)
    store = _pick_store(rng)
    first, last = rng.pick(FIRST_NAMES[store]), rng.pick(LAST_NAMES[store])
    number = CUSTOMER_NUMBER_BASE + index
    company = None
    domain = rng.pick(MAIL_DOMAINS[store])
    if rng.random() < 0.45:  # most of a B2B shop's buyers order for a company
        trade = rng.pick(COMPANY_TRADES[store])
        company = f"{rng.pick(LAST_NAMES[store])} {trade} {rng.pick(COMPANY_FORMS[store])}"
        domain = _domain(company.split()[0], trade.split()[0], tld=("de", "at", "com")[store])
    return CustomerPlan(
        reference=f"{STORES[store][0]}--{number}", store=store, email=_email(first, last, number, domain),
        first_name=first, last_name=last, company=company,
        po_shape=rng.weighted(PO_CUM_WEIGHTS),
    )


@lru_cache(maxsize=256)
def spryker_customer_plan(reference: str) -> CustomerPlan:
    """A name and e-mail for a customer of the Spryker carts file, the same for every seed."""
    rng = DemoRandom(f"spryker/{reference}")
    first, last = rng.pick(FIRST_NAMES[0]), rng.pick(LAST_NAMES[0])
    number = int("".join(char for char in reference if char.isdigit()) or 0)
    return CustomerPlan(
        reference=reference, store=0, email=_email(first, last, number, "spryker-demo.com"),
        first_name=first, last_name=last, company="Spryker Systems GmbH" if number % 3 == 0 else None,
        po_shape=number % len(PURCHASE_ORDER_SHAPES),
    )


class BlockBuilder:
    """Builds one block of the history. Every random draw comes from the block's own Random."""

    def __init__(self, seed: int, anchor: int, spryker_customers: Sequence[str], numbers: TrackingNumbers) -> None:
        self.seed, self.anchor, self.numbers = seed, anchor, numbers
        self.spryker_customers = tuple(spryker_customers)
        self.tracking_serial_base = seed % 200 * 4_000_000

    def build(self, block: int) -> BlockPlan:
        rng = DemoRandom(f"demo/{self.seed}/{self.anchor}/{block}")
        first_customer = block * CUSTOMERS_PER_BLOCK
        customers = [customer_plan(self.seed, first_customer + j) for j in range(CUSTOMERS_PER_BLOCK)]
        # Within a block, order numbers follow time, as Spryker's order references do.
        times = sorted(self.anchor - int(rng.random() * HISTORY_SECONDS) for _ in range(BLOCK))
        ordered = set(rng.sample(range(BLOCK), CARTS_PER_BLOCK[CartState.ORDERED]))
        other_carts: dict[int, list[str]] = {}
        for state in (CartState.OPEN, CartState.LOCKED, CartState.DELETED):
            for _ in range(CARTS_PER_BLOCK[state]):
                other_carts.setdefault(rng.below(BLOCK), []).append(state)
        orders: list[OrderPlan] = []
        carts_at: list[list[CartPlan]] = []
        with_custom: list[int] = []  # positions whose order has a custom reference: reorder sources
        cart_number = CART_NUMBER_BASE + block * sum(CARTS_PER_BLOCK.values())
        for position in range(BLOCK):
            index = block * BLOCK + position
            source = None
            if position in ordered and with_custom and rng.random() < 0.15:
                source = orders[rng.pick(with_custom)]  # the customer reorders an earlier order
            customer, store = (source.customer, source.store) if source else self._customer(rng, customers, block)
            order = OrderPlan(ORDER_NUMBER_BASE + index, customer, store, times[position])
            carts: list[CartPlan] = []
            if position in ordered:
                cart = self._cart(rng, f"quote-{cart_number}", customer, store, CartState.ORDERED, order.placed, source)
                cart_number += 1
                order.cart, order.custom = cart, cart.custom
                carts.append(cart)
            elif rng.random() < 0.35:
                order.custom = self._purchase_order(rng, customer, order.placed)
            self._order_details(rng, order, index)
            orders.append(order)
            if order.custom:
                with_custom.append(position)
            for state in other_carts.get(position, ()):
                source = None
                if state == CartState.OPEN and with_custom and rng.random() < 0.33:
                    source = orders[rng.pick(with_custom)]  # a reorder, not checked out yet
                owner, owner_store = (
                    (source.customer, source.store) if source else self._customer(rng, customers, block))
                carts.append(self._cart(rng, f"quote-{cart_number}", owner, owner_store, state, order.placed, source))
                cart_number += 1
            carts_at.append(carts)
        return BlockPlan(customers, orders, carts_at)

    def _customer(self, rng: DemoRandom, customers: list[CustomerPlan], block: int) -> tuple[CustomerPlan, int]:
        draw = rng.random()
        if draw < 0.02 and self.spryker_customers:  # Spryker's demo customers shop in every store
            return spryker_customer_plan(rng.pick(self.spryker_customers)), _pick_store(rng)
        if draw < 0.57:
            customer = customers[rng.below(CUSTOMERS_PER_BLOCK)]
        else:
            customer = customer_plan(self.seed, rng.below((block + 1) * CUSTOMERS_PER_BLOCK))
        return customer, customer.store

    def _purchase_order(self, rng: DemoRandom, customer: CustomerPlan, when: int) -> str:
        shape = customer.po_shape if rng.random() < 0.8 else rng.weighted(PO_CUM_WEIGHTS)
        return PURCHASE_ORDER_SHAPES[shape][1](rng, time.gmtime(when).tm_year)

    def _cart(self, rng: DemoRandom, key: str, customer: CustomerPlan, store: int, state: str, when: int,
              reorder_of: OrderPlan | None) -> CartPlan:
        created = when - rng.between(600, 10 * DAY)
        updated = when if state == CartState.ORDERED else min(self.anchor, created + rng.between(60, 20 * DAY))
        cart = CartPlan(key, customer, store, state, created, updated)
        cart.items = rng.between(1, 16)
        cart.units = cart.items + rng.between(0, 3 * cart.items)
        cart.total = cart.units * rng.between(299, 24999)
        cart.is_default = rng.random() < 0.25
        if reorder_of is not None:  # Spryker copies the custom reference onto the reorder's cart
            cart.name = f"Reorder {reorder_of.reference}"
            cart.custom = reorder_of.custom
        else:
            cart.name = rng.pick(CART_NAMES)
            chance = {CartState.ORDERED: 0.55, CartState.OPEN: 0.4, CartState.LOCKED: 0.6}.get(state, 0.2)
            if rng.random() < chance:
                cart.custom = self._purchase_order(rng, customer, created)
        if cart.custom:
            if state in (CartState.OPEN, CartState.LOCKED) and rng.random() < 0.1:
                # the buyer corrected a typo: the first value stays, retired
                cart.refs.append((KIND.CUSTOM, _typo(rng, cart.custom), SOURCE.SPRYKER, created, created + 300))
            cart.refs.append((KIND.CUSTOM, cart.custom, SOURCE.SPRYKER, created + 300, None))
        if state == CartState.LOCKED and rng.random() < 0.3:  # converted from a quote request
            cart.refs.append((KIND.OTHER, f"Angebot AN-{time.gmtime(created).tm_year}-{rng.between(1, 10**5):05d}",
                              SOURCE.SPRYKER, created, None))
        return cart

    def _order_details(self, rng: DemoRandom, order: OrderPlan, index: int) -> None:
        age = (self.anchor - order.placed) / DAY
        for limit, statuses, cum_weights in STATUS_BY_AGE:
            if age < limit:
                order.status = statuses[rng.weighted(cum_weights)]
                break
        if order.cart is not None:
            order.items, order.total = order.cart.items, order.cart.total
        else:
            order.items = rng.between(1, 13)
            order.total = order.items * rng.between(499, 39999)
        self._order_references(rng, order, index)

    def _order_references(self, rng: DemoRandom, order: OrderPlan, index: int) -> None:
        placed, status, refs = order.placed, order.status, order.refs
        year = time.gmtime(placed).tm_year
        later = lambda low, high: min(self.anchor - 60, placed + rng.between(low, high))
        if order.custom:
            corrected = placed
            if order.cart is None and rng.random() < 0.03:  # the buyer's typo, corrected by an agent after checkout
                corrected = later(3600, 2 * DAY)
                refs.append((KIND.CUSTOM, _typo(rng, order.custom), SOURCE.SPRYKER, placed, corrected))
            source = SOURCE.SPRYKER if corrected == placed else SOURCE.AGENT
            refs.append((KIND.CUSTOM, order.custom, source, corrected, None))
        if status != "new" and not (status == "canceled" and rng.random() < 0.5):
            refs.append((KIND.ERP, f"SO-{1_000_000 + index}", SOURCE.API, later(60, 1800), None))
        payment = self._payment(rng) if status != "new" else None
        if payment:
            refs.append((KIND.PAYMENT, payment, SOURCE.SPRYKER, later(5, 120), None))
        if status not in FULFILLED:
            return
        refs.append((KIND.INVOICE, f"INV-{year}-{index + 1:07d}", SOURCE.API, later(DAY, 3 * DAY), None))
        if rng.random() < 0.38:  # fulfilled by the 3PL rather than the shop's own warehouse
            refs.append((KIND.SHIPMENT, f"SHP-{STORES[order.store][0]}{300_000 + index:08d}", SOURCE.API,
                         later(DAY // 2, 2 * DAY), None))
        if rng.random() < 0.75:  # the rest go by freight forwarder, without a parcel number
            self._parcels(rng, order, index, later(DAY, 3 * DAY))
        if status == "returned":
            refs.append((KIND.OTHER, f"RMA-{year}-{index:07d}", SOURCE.API, later(7 * DAY, 20 * DAY), None))
        elif rng.random() < 0.02:
            ticket = f"Ticket #{rng.between(10000, 99999)}"
            refs.append((KIND.OTHER, ticket, SOURCE.AGENT, later(2 * DAY, 9 * DAY), None))

    def _payment(self, rng: DemoRandom) -> str | None:
        draw = rng.random()
        if draw < 0.22:  # PayPal transaction ids
            return "".join(rng.choices(ALNUM, k=17))
        if draw < 0.27:  # PayPal's older REST payment ids
            return "PAY-" + "".join(rng.choices(ALNUM, k=24))
        if draw < 0.39:  # card payments: Adyen PSP reference
            return str(rng.between(10**15, 10**16))
        if draw < 0.48:  # card payments: Stripe payment intent
            return "pi_" + "".join(rng.choices(MIXED, k=24))
        return None  # on account: B2B customers pay the invoice

    def _parcels(self, rng: DemoRandom, order: OrderPlan, index: int, shipped: int) -> None:
        store_code = STORES[order.store][0]
        draw = rng.random()
        count = 1 if draw < 0.88 else 2 if draw < 0.98 else 3
        carrier = rng.random()
        for parcel in range(count):
            sequence = index * 4 + parcel
            if store_code == "US":
                number = self.numbers.dhl_express(self.tracking_serial_base + sequence) if carrier < 0.2 else \
                    self.numbers.ups(rng.pick(TrackingNumbers.UPS_SHIPPERS["US"]),
                                     rng.pick(TrackingNumbers.UPS_SERVICES), self.seed * 7919 + sequence)
            elif carrier < 0.5:
                number = self.numbers.dpd(1_340_000_000_000 + self.seed % 1000 * 10**9 + sequence)
            elif carrier < 0.8:
                number = self.numbers.dhl_express(self.tracking_serial_base + sequence)
            else:
                number = self.numbers.ups(rng.pick(TrackingNumbers.UPS_SHIPPERS[store_code]),
                                          rng.pick(TrackingNumbers.UPS_SERVICES), self.seed * 7919 + sequence)
            if parcel == 0 and rng.random() < 0.03:  # a voided label: the first number was replaced
                voided = self.numbers.dhl_express(self.tracking_serial_base + index * 4 + 3)
                order.refs.append((KIND.TRACKING, voided, SOURCE.API, shipped - 3600, shipped))
            order.refs.append((KIND.TRACKING, number, SOURCE.API, shipped, None))


def _typo(rng: DemoRandom, value: str) -> str:
    """The value as first typed, with one character swapped or missing."""
    if len(value) < 4:
        return value + "0"
    at = rng.between(1, len(value) - 1)
    if rng.random() < 0.5:
        return value[:at] + value[at + 1] + value[at] + value[at + 2:]
    return value[:at] + value[at + 1:]


# ----------------------------------------------------------------------------- rows

TABLES = ("customers", "carts", "orders", "references", "search_terms")
NUMBERED = ("customers", "carts", "orders")  # tables whose ids the generator assigns: other rows point at them


@dataclass(frozen=True)
class RowGroup:
    """Rows of one table that share one INSERT (or COPY) statement: these columns, in this order."""

    table: str
    columns: tuple[str, ...]


# The row groups of a batch, in writing order: a cart before the order that points at it, an owner
# before its references. References and search terms carry no id: nothing points at them, so the
# database numbers them as they come. References are grouped by owner and state so that no row
# binds a NULL: sqlite3 looks up an adapter for every None (and bool) it binds, ~4 µs per order.
_REFERENCE = ("kind", "value", "key", "active", "source", "created_at", "created_by")
ROW_GROUPS: dict[str, RowGroup] = {
    "customers": RowGroup("customers", ("id", "customer_reference", "email", "first_name", "last_name", "company")),
    "carts": RowGroup("carts", ("id", "key", "uuid", "name", "customer_reference", "store", "currency", "is_default",
                                "item_count", "unit_count", "grand_total", "state", "version", "created_at",
                                "updated_at")),
    "orders": RowGroup("orders", ("id", "order_reference", "store", "customer_reference", "email", "name", "currency",
                                  "grand_total", "item_count", "status", "placed_at", "cart_id", "version")),
    "order_references": RowGroup("references", ("order_id", *_REFERENCE)),
    "cart_references": RowGroup("references", ("cart_id", *_REFERENCE)),
    "retired_references": RowGroup("references", ("order_id", "cart_id", *_REFERENCE, "retired_at", "retired_by")),
    "search_terms": RowGroup("search_terms", ("key", "field", "record_type", "record_id", "value")),
}
# Columns that hold ids of NUMBERED tables; record_id's table is named by the row's record_type.
POINTS_AT = {"order_id": "orders", "cart_id": "carts", "record_id": None}
TABLE_OF_RECORD = {"order": "orders", "cart": "carts", "customer": "customers"}


def _check_columns() -> None:
    """Rows are positional: a model change must not shift them silently, nor add a column they leave empty."""
    for name, group in ROW_GROUPS.items():
        table = db.metadata.tables[group.table]
        unknown = [column for column in group.columns if column not in table.columns]
        unfilled = [column.name for column in table.columns
                    if column.name not in group.columns and not column.nullable and not column.primary_key]
        if unknown or unfilled:
            raise RuntimeError(f"demo.ROW_GROUPS[{name!r}] is out of date: unknown {unknown}, not filled {unfilled}")


def _id_positions(group: RowGroup) -> tuple[tuple[int, str | None], ...]:
    """(position, table) of each column holding an id; table None: the row's record_type names it."""
    return tuple((position, group.table if column == "id" else POINTS_AT[column])
                 for position, column in enumerate(group.columns) if column == "id" or column in POINTS_AT)


@dataclass
class Batch:
    """Rows for one transaction, with the ids of NUMBERED tables counted from `first_ids`."""

    first_ids: dict[str, int]
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {name: [] for name in ROW_GROUPS})
    # record.imported events, all at imported_at, prepared (their JSON made) before the batch's turn to be written
    events: list[audit.PreparedEvent] = field(default_factory=list)
    imported_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    orders_end: int = 0  # order index after the last order in this batch

    def count(self, table: str) -> int:
        return sum(len(rows) for name, rows in self.rows.items() if ROW_GROUPS[name].table == table)

    def rebased(self, first_ids: dict[str, int]) -> Batch:
        """The same rows with ids moved to start at `first_ids` (another writer took ours)."""
        shift = {table: first_ids[table] - self.first_ids[table] for table in NUMBERED}
        moved = Batch({table: first_ids[table] for table in NUMBERED}, events=self.events,
                      imported_at=self.imported_at, orders_end=self.orders_end)
        for name, rows in self.rows.items():
            group = ROW_GROUPS[name]
            record_type_at = group.columns.index("record_type") if "record_type" in group.columns else None
            positions = _id_positions(group)
            moved.rows[name] = [_shift_row(row, positions, record_type_at, shift) for row in rows]
        return moved


def _shift_row(row: tuple, positions: tuple[tuple[int, str | None], ...], record_type_at: int | None,
               shift: dict[str, int]) -> tuple:
    values = list(row)
    for position, table in positions:
        if values[position] is not None:
            values[position] += shift[table or TABLE_OF_RECORD[values[record_type_at]]]
    return tuple(values)


# Every " HH:MM:SS" of a day and every "YYYY-MM-DD" are looked up, not formatted: ~6 per order.
_DAY_TEXTS: dict[int, str] = {}  # grows by one per day of history: 730 for the default two years


@lru_cache(maxsize=2)
def _clock_texts(suffix: str) -> list[str]:
    return [f" {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000000{suffix}" for second in range(DAY)]


class RowBuilder:
    """Turns block plans into rows with precomputed ids, search terms and audit events."""

    def __init__(self, dialect: str, next_ids: dict[str, int]) -> None:
        self.next_ids = {table: next_ids[table] for table in NUMBERED}
        self.clock_texts = _clock_texts("+00" if dialect == "postgresql" else "")  # SQLite keeps naive UTC text
        self.day_texts = _DAY_TEXTS
        self._start_batch()

    def _start_batch(self) -> None:
        self.batch = Batch(dict(self.next_ids))
        self.events = audit.EventTemplate(IMPORTED_ACTION, DEMO_ACTOR, self.batch.imported_at)

    def take(self, orders_end: int) -> Batch:
        batch = self.batch
        batch.orders_end = orders_end
        self._start_batch()
        return batch

    def add(self, plan: BlockPlan, low: int, high: int) -> None:
        """Rows for positions low..high-1 of a block; its customers come with position 0."""
        if low == 0:
            for customer in plan.customers:
                self._add_customer(customer)
        for position in range(low, high):
            for cart in plan.carts_at[position]:
                self._add_cart(cart)  # before the order: the order points at its cart
            self._add_order(plan.orders[position])

    def _next(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] = value + 1
        return value

    def _time(self, moment: int) -> str:
        day, second = divmod(moment, DAY)
        day_text = self.day_texts.get(day)
        if day_text is None:
            day_text = self.day_texts[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        return day_text + self.clock_texts[second]

    def _add_terms(self, record_type: str, record_id: int, fields: list[tuple[str, str | None]]) -> None:
        rows = self.batch.rows["search_terms"]
        for key, field_name, value in terms(fields):
            rows.append((key, field_name, record_type, record_id, value))

    def _add_customer(self, customer: CustomerPlan) -> None:
        row_id = self._next("customers")
        self.batch.rows["customers"].append(
            (row_id, customer.reference, customer.email, customer.first_name, customer.last_name, customer.company))
        self._add_terms("customer", row_id, customer_fields(customer.reference, customer.email))

    def _add_cart(self, cart: CartPlan) -> None:
        cart.row_id = row_id = self._next("carts")
        store, currency = STORES[cart.store]
        cart_uuid = str(uuid.uuid5(CART_UUID_NAMESPACE, cart.key))  # as the Spryker importer derives it
        state = cart.state.value
        self.batch.rows["carts"].append((
            row_id, cart.key, cart_uuid, cart.name, cart.customer.reference, store, currency, int(cart.is_default),
            cart.items, cart.units, cart.total, state, 1, self._time(cart.created), self._time(cart.updated),
        ))
        self._add_terms("cart", row_id, cart_fields(cart.key, cart_uuid, cart.name))
        self._add_references(cart.refs, row_id, "cart_references")
        self._add_event("cart", cart.key, {"state": state}, cart.refs)

    def _add_order(self, order: OrderPlan) -> None:
        row_id = self._next("orders")
        store, currency = STORES[order.store]
        reference = f"{store}--{order.number}"
        customer = order.customer
        self.batch.rows["orders"].append((
            row_id, reference, store, customer.reference, customer.email, customer.name, currency, order.total,
            order.items, order.status, self._time(order.placed), order.cart.row_id if order.cart else None, 1,
        ))
        self._add_terms("order", row_id, order_fields(reference))
        self._add_references(order.refs, row_id, "order_references")
        self._add_event("order", reference, {"status": order.status}, order.refs)

    def _add_references(self, refs: list[RefPlan], owner_id: int, group: str) -> None:
        rows = self.batch.rows
        active = rows[group]
        for kind, value, source, created, retired in refs:
            if retired is None:
                active.append((owner_id, kind, value, matching_key(value), 1, source, self._time(created), CREATED_BY))
            else:
                order_id, cart_id = (owner_id, None) if group == "order_references" else (None, owner_id)
                rows["retired_references"].append((
                    order_id, cart_id, kind, value, matching_key(value), 0, source, self._time(created), CREATED_BY,
                    self._time(retired), CREATED_BY))

    def _add_event(self, record_type: str, record_key: str, detail: dict[str, Any], refs: list[RefPlan]) -> None:
        detail["references"] = [[kind, value] for kind, value, _, _, retired in refs if retired is None]
        retired = [[kind, value] for kind, value, _, _, retired_at in refs if retired_at is not None]
        if retired:
            detail["retired"] = retired
        self.batch.events.append(self.events.prepare(record_type, record_key, DETAIL_JSON(detail)))


# ----------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationSpec:
    seed: int
    anchor: int  # epoch seconds: the end of the generated history
    start: int  # index of the first order to generate
    end: int  # one past the last
    dialect: str
    spryker_customers: tuple[str, ...]
    next_ids: dict[str, int]  # of the NUMBERED tables, when the load starts
    batch_orders: int = field(default_factory=lambda: BATCH_ORDERS)  # a multiple of BLOCK


def batch_ranges(spec: GenerationSpec) -> list[tuple[int, int]]:
    """(first, end) order indexes of each batch. The first ends at a block boundary, so the first
    write starts soon and every later batch begins a block."""
    ranges, position = [], spec.start
    while position < spec.end:
        limit = (position // BLOCK + 1) * BLOCK if position == spec.start else position + spec.batch_orders
        ranges.append((position, min(spec.end, limit)))
        position = ranges[-1][1]
    return ranges


class HistoryGenerator:
    """Makes any batch of the history by itself: the ids a batch starts from follow from the fixed
    numbers of customers, carts and orders per block, so several processes can each make every
    other batch. Pure: touches no database."""

    def __init__(self, spec: GenerationSpec) -> None:
        self.spec = spec
        self.blocks = BlockBuilder(spec.seed, spec.anchor, spec.spryker_customers, TrackingNumbers())
        self.ranges = batch_ranges(spec)
        self.first_ids = [{table: spec.next_ids[table] for table in NUMBERED}]
        for low, high in self.ranges[:-1]:
            added = self._numbered_rows(low, high)
            self.first_ids.append({table: self.first_ids[-1][table] + added[table] for table in NUMBERED})

    def batch(self, index: int) -> Batch:
        low, high = self.ranges[index]
        rows = RowBuilder(self.spec.dialect, self.first_ids[index])
        for block, part_low, part_high in self._block_parts(low, high):
            rows.add(self.blocks.build(block), part_low, part_high)
        return rows.take(high)

    def batches(self) -> Iterator[Batch]:
        return (self.batch(index) for index in range(len(self.ranges)))

    @staticmethod
    def _block_parts(low: int, high: int) -> Iterator[tuple[int, int, int]]:
        """(block, first position, end position) of each block that orders low..high-1 fall in."""
        for block in range(low // BLOCK, (high - 1) // BLOCK + 1):
            first = block * BLOCK
            yield block, max(low, first) - first, min(high, first + BLOCK) - first

    def _numbered_rows(self, low: int, high: int) -> dict[str, int]:
        """The customers, carts and orders that orders low..high-1 bring (a block's customers come
        with its first order, carts with the order they were created at)."""
        counts = {"customers": 0, "carts": 0, "orders": high - low}
        for block, part_low, part_high in self._block_parts(low, high):
            if part_low == 0:
                counts["customers"] += CUSTOMERS_PER_BLOCK
            if (part_low, part_high) == (0, BLOCK):
                counts["carts"] += CARTS_IN_BLOCK
            else:  # only where a load began or ended inside a block: count in its plan
                counts["carts"] += sum(map(len, self.blocks.build(block).carts_at[part_low:part_high]))
        return counts


def generate_batches(spec: GenerationSpec) -> Iterator[Batch]:
    """Rows for orders start..end-1, one Batch per transaction, in order."""
    return HistoryGenerator(spec).batches()


@contextmanager
def rare_collections() -> Iterator[Callable[[], None]]:
    """The cyclic garbage collector paused, and run by the caller's `batch_done` every COLLECT_EVERY
    batches instead. A batch is a million new tuples; the collector, started by allocations, walks
    them again and again (a fifth of the generator's time). Rows hold no reference cycles, so memory
    stays as flat as it was; the rare collections catch any that other code makes. Call batch_done
    once nothing holds the batch any more: a collection walks every object still alive."""
    was_enabled = gc.isenabled()
    gc.disable()
    done = itertools.count(1)

    def batch_done() -> None:
        if next(done) % COLLECT_EVERY == 0:
            gc.collect()

    try:
        yield batch_done
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def interrupt_deferred() -> Iterator[Callable[[], bool]]:
    """Ctrl-C during a load ends it between two batches, not inside a statement: an interrupted
    statement leaves SQLite's connection, and its write lock, held by the traceback, so the indexes
    a big load dropped could not be rebuilt. Yields `interrupted()`; a second Ctrl-C acts at once.
    Only the main thread receives signals; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def defer(signum: int, _frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, previous)
        print("Stopping after this batch (Ctrl-C again to stop at once)...", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, defer)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Written:
    """What one written batch added, as the workers report it."""

    index: int
    rows: dict[str, int]
    events: int
    orders_end: int


def _batch_events(batch: Batch, index: int, run_event: audit.EventData | None) -> list:
    """The batch's events; the run's own event goes with the first batch, so it exists whenever its orders do."""
    events: list[audit.EventData | audit.PreparedEvent] = list(batch.events)
    if index == 0 and run_event is not None:
        events.insert(0, run_event)
    return events


def _write_batch(session: Session, writer: BatchWriter, batch: Batch, index: int,
                 run_event: audit.EventData | None) -> Written:
    events = _batch_events(batch, index, run_event)
    writer.write(batch, events)
    session.commit()
    return Written(index, {table: batch.count(table) for table in TABLES}, len(events), batch.orders_end)


def load_here(session: Session, writer: BatchWriter, spec: GenerationSpec, run_event: audit.EventData | None,
              interrupted: Callable[[], bool]) -> Iterator[Written]:
    """Generate and write every batch in this process (small loads, one core)."""
    history = HistoryGenerator(spec)
    with rare_collections() as batch_done:
        for index in range(len(history.ranges)):
            if interrupted():
                return
            batch = history.batch(index)
            yield _write_batch(session, writer, batch, index, run_event)
            del batch  # else the collection walks its rows
            batch_done()


# Messages from a worker: (WRITTEN, Written), (FINISHED, None) or (FAILED, traceback).
WRITTEN, FINISHED, FAILED = "written", "finished", "failed"


@dataclass
class Turns:
    """Shared by the workers: the index of the batch whose turn it is to be written, and whether to stop."""

    condition: Any  # multiprocessing.Condition; guards both values
    next_batch: Any  # multiprocessing.Value("q")
    stopping: Any  # multiprocessing.Value("b")

    def wait_for(self, index: int) -> bool:
        """Block until batch `index` may be written; False when the load is stopping instead."""
        with self.condition:
            self.condition.wait_for(lambda: self.stopping.value or self.next_batch.value == index)
            return not self.stopping.value

    def written(self, index: int) -> None:
        with self.condition:
            self.next_batch.value = index + 1
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.stopping.value = 1
            self.condition.notify_all()


@dataclass(frozen=True)
class Database:
    """How a worker process connects: the app's URL and engine options (a test's PostgreSQL schema
    among them), without a pool: each worker holds one connection for the whole load."""

    url: str
    options: dict[str, Any]

    @classmethod
    def of(cls, session: Session) -> "Database":
        options = {**current_app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}), "poolclass": NullPool}
        return cls(session.get_bind().url.render_as_string(hide_password=False), options)

    def engine(self) -> Engine:
        engine = create_engine(self.url, **self.options)
        configure_sqlite(engine)
        return engine


def _work(database: Database, spec: GenerationSpec, run_event: audit.EventData | None, worker: int, workers: int,
          turns: Turns, connection: Any) -> None:
    """One worker process: makes batches worker, worker + workers, ... and writes each in its turn,
    on a connection of its own. Writing in batch order keeps the committed batches a prefix of the
    history (what a later run resumes from) and the audit chain in order; while one worker writes,
    the other makes its next batch. Ctrl-C reaches every process of the group: the parent decides."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already so when started from the main thread
    try:
        engine = database.engine()
        with Session(engine) as session, rare_collections() as batch_done:
            writer = make_writer(session)
            writer.configure_connection()
            history = HistoryGenerator(spec)
            for index in range(worker, len(history.ranges), workers):
                if turns.stopping.value:
                    break
                batch = history.batch(index)
                if not turns.wait_for(index):
                    break
                connection.send((WRITTEN, _write_batch(session, writer, batch, index, run_event)))
                turns.written(index)
                del batch  # else the collection walks its rows
                batch_done()
        engine.dispose()
        connection.send((FINISHED, None))
    except BaseException:  # noqa: BLE001 - handed to the parent, which raises it
        turns.stop()
        connection.send((FAILED, traceback.format_exc()))
    finally:
        connection.close()


@contextmanager
def _started_ignoring_ctrl_c() -> Iterator[None]:
    """Processes started inside ignore Ctrl-C from their first instruction: an ignored signal stays
    ignored across exec, and Python then installs no KeyboardInterrupt handler. Otherwise a Ctrl-C
    while a worker imports kills it with a traceback. The parent's own handler is back as soon as
    the process is started (a fork and exec)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def load_in_workers(database: Database, spec: GenerationSpec, run_event: audit.EventData | None,
                    interrupted: Callable[[], bool], workers: int = WORKERS) -> Iterator[Written]:
    """Generate and write the batches in `workers` processes, as _work describes; yields each
    batch as it is written. A worker that fails or dies stops the others and raises here."""
    context = multiprocessing.get_context("spawn")  # a forked child would share the database connections
    condition = context.Condition()
    turns = Turns(condition, context.Value("q", 0, lock=False), context.Value("b", 0, lock=False))
    readers, processes = {}, []
    for worker in range(workers):
        reader, writer_end = context.Pipe(duplex=False)
        process = context.Process(target=_work, name=f"demo-worker-{worker}", daemon=True,
                                  args=(database, spec, run_event, worker, workers, turns, writer_end))
        with _started_ignoring_ctrl_c():
            process.start()
        writer_end.close()  # the worker holds the only write end: if it dies, reading ends with EOFError
        readers[reader] = process
        processes.append(process)
    try:
        while readers:
            for reader in multiprocessing.connection.wait(list(readers), timeout=0.2):
                process = readers[reader]
                try:
                    kind, body = reader.recv()
                except EOFError:
                    process.join(timeout=5)
                    raise RuntimeError(f"a demo worker process stopped (exit code {process.exitcode})") from None
                if kind == FAILED:
                    raise RuntimeError(f"a demo worker process failed:\n{body}")
                if kind == FINISHED:
                    del readers[reader]
                    reader.close()
                else:
                    yield body
            if interrupted():
                turns.stop()  # the batch being written is committed; no other one starts
    finally:
        turns.stop()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


# ----------------------------------------------------------------------------- writing


class BatchWriter:
    """Writes a batch and its audit events in the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def write(self, batch: Batch, events: list[audit.EventData | audit.PreparedEvent]) -> None:
        connection = self.session.connection()
        self.before(connection)
        audit.append_events(self.session, events)  # on SQLite this takes the write lock, before the ids are read
        ids = self.next_ids(connection)
        if any(ids[table] != batch.first_ids[table] for table in NUMBERED):
            batch = batch.rebased(ids)
        self.insert(connection, batch, ids)

    def before(self, connection: Connection) -> None:
        """Anything that must precede the audit head's lock."""

    def configure_connection(self) -> None:
        """Settings for loading, on this writer's connection; every connection that writes batches makes them."""

    def next_ids(self, connection: Connection) -> dict[str, int]:
        return {
            table: connection.exec_driver_sql(f'SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"').scalar_one()
            for table in TABLES
        }

    def insert(self, connection: Connection, batch: Batch, ids: dict[str, int]) -> None:
        """The batch's rows; `ids` are the tables' next ids, those of NUMBERED tables already the batch's."""
        for name, group in ROW_GROUPS.items():
            rows = [dict(zip(group.columns, row, strict=True)) for row in batch.rows[name]]
            if rows:
                connection.execute(insert(db.metadata.tables[group.table]), rows)

    def prepare(self, big: bool) -> None:
        """Before the first batch. A big load (one that at least doubles the data) drops the plain
        indexes of the tables it fills and builds them once at the end: with random keys, keeping
        them current costs several times more, mostly in pages rewritten by every commit."""
        if big:
            connection = self.session.connection()
            for index in bulk_indexes():
                index.drop(connection, checkfirst=True)
        self.session.commit()

    def finish(self) -> None:
        """After the last batch, also after a failure: put back whatever prepare() dropped."""
        self.session.rollback()
        restore_after_bulk(self.session)


class SqliteWriter(BatchWriter):
    """executemany through the driver; FTS5 fed once per batch instead of once per row.

    An FTS5 insert from a trigger flushes the index for every row (each statement is a savepoint),
    which makes bulk inserts ~5x slower. Inside the batch's transaction the insert triggers are
    dropped, the rows inserted, their keys added to the FTS tables with one INSERT ... SELECT, and
    the triggers re-created from their stored SQL: other connections never see them missing.
    """

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        dialect = session.get_bind().dialect
        # Core compiles the INSERT (quoting, column order); the rows go to the driver's executemany as they are.
        self.statements = {
            name: str(insert(db.metadata.tables[group.table]).compile(dialect=dialect, column_keys=list(group.columns)))
            for name, group in ROW_GROUPS.items()
        }

    # Per-connection settings for the load, put back afterwards.
    LOAD_PRAGMAS: ClassVar[dict[str, int]] = {
        "cache_size": -65536,  # 64 MiB: index pages are written at random
        "wal_autocheckpoint": 20000,  # checkpoint every ~80 MB rather than 4 MB: batches rewrite the same pages
        "secure_delete": 0,  # Debian builds default to 1, which would zero every page of a dropped index
        "threads": 2,  # helper threads for the sorts of the index rebuild at the end: ~10 % faster
    }

    # FTS5 merges its index segments as it goes; `db analyze` (run after every load) merges them all
    # into one anyway, so during the load it only merges when a level holds 64 (5 % less work).
    # A load killed outright leaves them set until the next load finishes; `db analyze` still merges.
    LOAD_FTS_MERGING: ClassVar[dict[str, int]] = {"automerge": 0, "crisismerge": 64}
    FTS_MERGING: ClassVar[dict[str, int]] = {"automerge": 4, "crisismerge": 16}  # FTS5's defaults

    def configure_connection(self) -> None:
        connection = self.session.connection()
        self.saved_pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in self.LOAD_PRAGMAS}
        for name, value in self.LOAD_PRAGMAS.items():
            connection.exec_driver_sql(f"PRAGMA {name}={value}")

    def prepare(self, big: bool) -> None:
        self.configure_connection()
        self._set_fts_merging(self.session.connection(), self.LOAD_FTS_MERGING)
        super().prepare(big)

    @staticmethod
    def _set_fts_merging(connection: Connection, settings: dict[str, int]) -> None:
        for fts in TRIGRAM_INDEXED.values():
            for name, value in settings.items():
                connection.exec_driver_sql(f"INSERT INTO {fts}({fts}, rank) VALUES (?, ?)", (name, value))

    def insert(self, connection: Connection, batch: Batch, ids: dict[str, int]) -> None:
        with self._fts_triggers_dropped(connection) as fts_tables:
            for name, rows in batch.rows.items():
                if rows:
                    connection.exec_driver_sql(self.statements[name], rows)
            for table, fts in fts_tables:
                # Rows without an id were numbered from ids[table] on: the write lock is ours.
                if count := batch.count(table):
                    connection.exec_driver_sql(
                        f'INSERT INTO {fts}(rowid, key) SELECT id, key FROM "{table}" '
                        "WHERE id >= ? AND id < ? ORDER BY id",  # rowids in order: FTS5 appends, never re-sorts
                        (ids[table], ids[table] + count),
                    )

    @contextmanager
    def _fts_triggers_dropped(self, connection: Connection) -> Iterator[list[tuple[str, str]]]:
        present = set(connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
        fts_tables = [(table, fts) for table, fts in TRIGRAM_INDEXED.items() if fts in present]
        names = tuple(f"{fts}_ai" for _, fts in fts_tables)  # schema.py's insert triggers
        placeholders = ",".join("?" for _ in names) or "NULL"
        triggers = connection.exec_driver_sql(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({placeholders})", names,
        ).all()
        for name, _ in triggers:
            connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
        # No try/finally: on an error the transaction rolls back, and with it the DROPs.
        yield fts_tables
        for _, sql in triggers:
            connection.exec_driver_sql(sql)

    def finish(self) -> None:
        super().finish()
        connection = self.session.connection()
        self._set_fts_merging(connection, self.FTS_MERGING)
        self.session.commit()  # a checkpoint cannot run inside a write transaction
        connection = self.session.connection()
        for name, value in getattr(self, "saved_pragmas", {}).items():
            connection.exec_driver_sql(f"PRAGMA {name}={int(value)}")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        self.session.commit()


class PostgresWriter(BatchWriter):
    """COPY through psycopg; ids taken past both MAX(id) and the serial sequence, then the sequence moved on.

    For a big load the trigram GIN indexes and the foreign keys between these tables are dropped
    too: building a GIN index once costs less than half of maintaining it row by row, and each
    foreign-key check locks its parent row. The generator's rows are consistent by construction;
    putting the keys back validates them all the same.
    """

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        connection = session.connection()
        self.sequences = {
            table: connection.exec_driver_sql(f"SELECT pg_get_serial_sequence('\"{table}\"', 'id')").scalar_one()
            for table in TABLES
        }

    def before(self, connection: Connection) -> None:
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")  # a crash loses the batch, never corrupts
        # Concurrent inserts wait for the batch (reads do not), so our precomputed ids stay ours.
        # Taken before the audit head so a concurrent edit (insert, then audit) cannot deadlock with us.
        tables = ", ".join(f'"{table}"' for table in TABLES)
        connection.exec_driver_sql(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")

    def next_ids(self, connection: Connection) -> dict[str, int]:
        ids = {}
        for table in TABLES:
            sequence = self.sequences[table]
            ids[table] = connection.exec_driver_sql(
                f'SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM "{table}"), '
                f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence})) + 1"
            ).scalar_one()
        return ids

    def prepare(self, big: bool) -> None:
        if big:
            connection = self.session.connection()
            connection.exec_driver_sql("SET maintenance_work_mem = '256MB'")  # for the index builds at the end
            for table, name in _postgres_foreign_keys(connection):
                connection.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
            for (name,) in connection.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(%(tables)s) AND indexdef LIKE '%%gin_trgm_ops%%'",
                {"tables": list(TRIGRAM_INDEXED)},
            ):
                connection.exec_driver_sql(f'DROP INDEX "{name}"')
        super().prepare(big)

    def insert(self, connection: Connection, batch: Batch, ids: dict[str, int]) -> None:
        cursor = connection.connection.driver_connection.cursor()
        quote = connection.dialect.identifier_preparer.quote
        for name, rows in batch.rows.items():
            if not rows:
                continue
            group = ROW_GROUPS[name]
            columns = ", ".join(quote(column) for column in group.columns)
            with cursor.copy(f"COPY {quote(group.table)} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        # Rows of NUMBERED tables came with their ids, past their sequences: move those on. (References
        # and search terms came without, and took theirs from their sequences.)
        for table in NUMBERED:
            if count := batch.count(table):
                connection.exec_driver_sql(f"SELECT setval('{self.sequences[table]}', %(last)s)",
                                           {"last": batch.first_ids[table] + count - 1})


def _postgres_foreign_keys(connection: Connection) -> list[tuple[str, str]]:
    """(table, constraint) for the foreign keys among the tables the generator fills."""
    inspector = inspect(connection)
    return [(table, key["name"]) for table in TABLES for key in inspector.get_foreign_keys(table)
            if key["referred_table"] in TABLES]


def bulk_indexes() -> list[Index]:
    """The plain indexes of the tables the generator fills, its audit events' included (unique ones
    stay: they guard the data)."""
    return [index for table in (*TABLES, AuditEvent.__tablename__) for index in db.metadata.tables[table].indexes
            if not index.unique]


def restore_after_bulk(session: Session) -> None:
    """Put back what a big load dropped; also what one that died left out. Cheap when nothing is missing."""
    engine = session.get_bind()
    statements = [str(CreateIndex(index, if_not_exists=True).compile(dialect=engine.dialect))
                  for index in bulk_indexes()]
    session.commit()
    if engine.dialect.name != "postgresql":
        connection = session.connection()
        for statement in statements:
            connection.exec_driver_sql(statement)
        session.commit()
        return
    # Trigram indexes first: they take longest, and the other connection builds the rest meanwhile.
    _build_in_parallel(engine, [postgres_trigram_index(table) for table in TRIGRAM_INDEXED] + statements)
    _restore_postgres_foreign_keys(session)


def _build_in_parallel(engine: Engine, statements: list[str]) -> None:
    """PostgreSQL builds one index per backend: two connections use both cores (GIN builds are serial)."""

    def build(statement: str) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            connection.exec_driver_sql(statement)

    with ThreadPoolExecutor(max_workers=INDEX_BUILDERS) as pool:
        list(pool.map(build, statements))  # list(): re-raises the first failure


def _restore_postgres_foreign_keys(session: Session) -> None:
    connection = session.connection()
    inspector = inspect(connection)
    present = {(table, tuple(key["constrained_columns"]))
               for table in TABLES for key in inspector.get_foreign_keys(table)}
    missing = [key for table in TABLES for key in db.metadata.tables[table].foreign_key_constraints
               if (table, tuple(key.column_keys)) not in present]
    for constraint in missing:
        connection.execute(AddConstraint(constraint))  # validates every row
    session.commit()


def make_writer(session: Session) -> BatchWriter:
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return SqliteWriter(session)
    if name == "postgresql":
        return PostgresWriter(session)
    return BatchWriter(session)


# ----------------------------------------------------------------------------- progress


def _order_exists(session: Session, index: int) -> bool:
    number = ORDER_NUMBER_BASE + index
    references = [f"{store}--{number}" for store, _ in STORES]
    return session.scalar(select(Order.id).where(Order.order_reference.in_(references)).limit(1)) is not None


def orders_present(session: Session) -> int:
    """How many generated orders exist. Batches commit in order, so they are always a prefix."""
    if not _order_exists(session, 0):
        return 0
    low, high = 1, 2  # invariant: order low-1 exists; find the first missing one
    while _order_exists(session, high - 1):
        low, high = high, high * 2
    while low < high:  # first missing index in [low, high)
        middle = (low + high) // 2
        if _order_exists(session, middle):
            low = middle + 1
        else:
            high = middle
    return low


@dataclass(frozen=True)
class PreviousRun:
    seed: int
    anchor: int
    generator: int


def previous_run(session: Session) -> PreviousRun | None:
    detail = session.scalar(
        select(AuditEvent.detail).where(AuditEvent.action == RUN_ACTION).order_by(AuditEvent.seq.desc()).limit(1))
    if not detail:
        return None
    data = json.loads(detail)
    return PreviousRun(int(data["seed"]), int(data["anchor"]), int(data.get("generator", 1)))


def default_anchor(now: datetime | None = None) -> int:
    """Midnight UTC of today: the history ends there, so it covers the last two years."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc).timestamp())


# ----------------------------------------------------------------------------- users


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    password: str | None  # only when created by this run


def ensure_demo_users(session: Session) -> list[DemoUser]:
    """Add the missing demo users to the session; the caller commits once their passwords are saved."""
    users = []
    for username, role in DEMO_USERS:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            users.append(DemoUser(username, role.value, None))
            continue
        password = secrets.token_urlsafe(18)  # 24 characters, ~144 bits
        user = User(username=username, role=role.value)
        user.set_password(password)
        session.add(user)
        audit.append_event(session, audit.EventData(
            action="user.created", actor=DEMO_ACTOR, record_type="user", record_key=username, new_value=role.value))
        users.append(DemoUser(username, role.value, password))
    return users


def write_users_file(path: Path, users: list[DemoUser], database: str) -> None:
    """Add the new users' passwords to the file (mode 0600), keeping the lines of earlier ones.

    One instance folder may serve several databases (SQLite for a demo, PostgreSQL for a trial):
    each line names its database, and only that database's lines for the same users are replaced.
    """
    created = {user.username: user for user in users if user.password}
    if not created:
        return
    kept = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            line_database = fields[3] if len(fields) > 3 else ""
            if line and not line.startswith("#") and not (fields[0] in created and line_database in ("", database)):
                kept.append(line)
    lines = ["# Reference Desk demo users, created by `flask --app wsgi demo load`. Keep this file private.",
             "# username\trole\tpassword\tdatabase", *kept,
             *(f"{user.username}\t{user.role}\t{user.password}\t{database}" for user in created.values())]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        os.fchmod(stream.fileno(), 0o600)  # whatever the umask
        stream.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


# ----------------------------------------------------------------------------- the command


@dataclass
class DemoReport:
    seed: int
    carts_file: Path
    carts: ImportReport
    orders_requested: int
    orders_before: int = 0
    orders_after: int = 0
    added: dict[str, int] = field(default_factory=lambda: {table: 0 for table in TABLES})
    events: int = 0
    seconds: float = 0.0
    users: list[DemoUser] = field(default_factory=list)
    users_file: Path | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C between two batches

    @property
    def orders_per_second(self) -> float:
        generated = self.orders_after - self.orders_before
        return generated / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        carts = self.carts
        lines = [(f"Spryker carts from {self.carts_file.name}: {carts.loaded} read "
                  f"({carts.created} new, {carts.updated} updated, {carts.unchanged} unchanged)")]
        lines += [f"  problem: {problem}" for problem in carts.problems]
        lines += self.notes
        if self.orders_after > self.orders_before:
            added = self.added
            lines.append(
                f"Demo history (seed {self.seed}): {self.orders_after - self.orders_before:,} orders added, "
                f"{self.orders_after:,} in all; {added['customers']:,} customers, {added['carts']:,} carts, "
                f"{added['references']:,} references, {added['search_terms']:,} search terms, "
                f"{self.events:,} audit events in {self.seconds:.1f} s ({self.orders_per_second:,.0f} orders/s)")
        elif not self.notes and not self.interrupted:
            lines.append(f"Demo history (seed {self.seed}): {self.orders_after:,} orders present "
                         f"(asked for {self.orders_requested:,}); nothing to add")
        if self.interrupted:
            lines.append(f"Stopped by Ctrl-C at {self.orders_after:,} of {self.orders_requested:,} orders, "
                         "indexes rebuilt; run the same command again to continue.")
        lines += self._user_lines()
        return lines

    def _user_lines(self) -> list[str]:
        created = [user for user in self.users if user.password]
        existing = [user for user in self.users if not user.password]
        lines = []
        if created:
            lines.append(f"Demo users created (passwords shown once; also in {self.users_file}, mode 0600):")
            lines += [f"  {user.username:<16} {user.role:<11} {user.password}" for user in created]
        if existing:
            names = ", ".join(f"{user.username} ({user.role})" for user in existing)
            where = f"their passwords are in {self.users_file}" if self.users_file and self.users_file.exists() \
                else f"their passwords were shown when they were created ({self.users_file} is missing)"
            lines.append(f"Demo users exist: {names}; {where}")
        return lines


def load_demo(session: Session, *, orders: int, seed: int, carts_file: Path, now: datetime | None = None) -> DemoReport:
    """Import the Spryker carts, ensure the demo users, then generate up to `orders` orders.

    Safe to run again: what exists is kept and only the missing orders (and their carts,
    customers and references) are added. `now` fixes the end of the history (tests).
    """
    _check_columns()
    restore_after_bulk(session)  # anything a big load that died left out
    report = DemoReport(seed=seed, carts_file=carts_file, orders_requested=orders,
                        carts=import_carts_file(session, carts_file, DEMO_ACTOR))
    spryker_customers = _spryker_customers(carts_file)
    _name_spryker_customers(session, spryker_customers)
    report.users = ensure_demo_users(session)
    report.users_file = Path(current_app.instance_path) / USERS_FILE_NAME
    write_users_file(report.users_file, report.users,  # before the commit: a password is never lost
                     session.get_bind().url.render_as_string(hide_password=True))
    session.commit()
    _generate(session, report, spryker_customers, now)
    return report


def _spryker_customers(carts_file: Path) -> tuple[str, ...]:
    with carts_file.open(newline="", encoding="utf-8") as stream:
        found = {(row.get("customer_reference") or "").strip() for row in csv.DictReader(stream)}
    return tuple(sorted(reference for reference in found if reference))


def _name_spryker_customers(session: Session, references: Sequence[str]) -> None:
    """The carts file knows its customers by reference only; give them a name and e-mail for the demo."""
    unnamed = session.scalars(
        select(Customer).where(Customer.customer_reference.in_(references), Customer.email.is_(None))).all()
    for customer in unnamed:
        plan = spryker_customer_plan(customer.customer_reference)
        customer.email, customer.first_name, customer.last_name = plan.email, plan.first_name, plan.last_name
        customer.company = customer.company or plan.company
        session.flush()
        reindex(session, customer)
    session.commit()


def _generate(session: Session, report: DemoReport, spryker_customers: tuple[str, ...], now: datetime | None) -> None:
    present = report.orders_before = report.orders_after = orders_present(session)
    run = previous_run(session)
    if present and run and run.seed != report.seed:
        report.notes.append(
            f"Demo history: {present:,} orders from seed {run.seed} are loaded; nothing added. "
            f"Run with --seed {run.seed} to extend them, or start from an empty database.")
        return
    if present and run and run.generator != GENERATOR_VERSION and report.orders_requested > present:
        # Extending would mix two histories: not what the same seed gives on an empty database.
        report.notes.append(
            f"Demo history: {present:,} orders from version {run.generator} of the generator are loaded "
            f"(this is version {GENERATOR_VERSION}); nothing added. Start from an empty database for more.")
        return
    if report.orders_requested <= present:
        return
    anchor = run.anchor if present and run else default_anchor(now)
    adding = report.orders_requested - present
    run_event = audit.EventData(action=RUN_ACTION, actor=DEMO_ACTOR, detail=json.dumps({
        "seed": report.seed, "anchor": anchor, "orders_present": present,
        "orders_requested": report.orders_requested, "generator": GENERATOR_VERSION}, separators=(",", ":")))
    started = time.perf_counter()
    writer = make_writer(session)
    try:
        writer.prepare(big=adding >= BIG_LOAD_ORDERS and adding >= present)
        spec = GenerationSpec(seed=report.seed, anchor=anchor, start=present, end=report.orders_requested,
                              dialect=writer.dialect, spryker_customers=spryker_customers,
                              next_ids=writer.next_ids(session.connection()))
        session.commit()  # next_ids opened a transaction; each batch runs in its own
        with interrupt_deferred() as interrupted:
            if adding >= WORKER_MIN_ORDERS and (os.cpu_count() or 1) >= WORKERS:
                written = load_in_workers(Database.of(session), spec, run_event, interrupted)
            else:
                written = load_here(session, writer, spec, run_event, interrupted)
            for batch in written:
                _count(report, batch)
            report.interrupted = interrupted() and report.orders_after < report.orders_requested
    finally:
        writer.finish()  # also rebuilds what a big load dropped: counted in the rate
        report.seconds = time.perf_counter() - started


def _count(report: DemoReport, batch: Written) -> None:
    for table in TABLES:
        report.added[table] += batch.rows[table]
    report.events += batch.events
    report.orders_after = max(report.orders_after, batch.orders_end)
