"""Typed SQLAlchemy 2 models. Times are stored as timezone-aware UTC on both databases."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps.

    SQLite has no time zones and returns naive values; PostgreSQL returns them in the session's
    zone. Both come back here as the same aware UTC value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use utcnow()")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# The matching key is compared byte-wise on both databases, so a prefix is a plain range scan.
KeyString = String(255).with_variant(String(255, collation="C"), "postgresql")


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLE_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class CartState(StrEnum):
    OPEN = "open"
    LOCKED = "locked"
    ORDERED = "ordered"
    DELETED = "deleted"


class Customer(db.Model):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_reference: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(255))

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part) or self.customer_reference


def only_where_set(name: str, column: str) -> Index:
    """An index of the rows where `column` is not NULL. Most orders have no cart and most references
    belong to an order: the index is a fraction of the size, and `column = x` still uses it (both
    databases know that it implies NOT NULL)."""
    condition = text(f"{column} IS NOT NULL")
    return Index(name, column, sqlite_where=condition, postgresql_where=condition)


class Order(db.Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_reference: Mapped[str] = mapped_column(String(64), unique=True)
    store: Mapped[str] = mapped_column(String(16))
    customer_reference: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    grand_total: Mapped[int] = mapped_column(BigInteger, default=0)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(64))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("carts.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    cart: Mapped["Cart | None"] = relationship(foreign_keys=[cart_id])
    references: Mapped[list["Reference"]] = relationship(
        back_populates="order", order_by="Reference.id"
    )

    __table_args__ = (only_where_set("ix_orders_cart_id", "cart_id"),)


class Cart(db.Model):
    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    customer_reference: Mapped[str | None] = mapped_column(String(64), index=True)
    store: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    unit_count: Mapped[int] = mapped_column(Integer, default=0)
    grand_total: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default=CartState.OPEN)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    references: Mapped[list["Reference"]] = relationship(
        back_populates="cart", order_by="Reference.id"
    )

    @property
    def order(self) -> Order | None:
        return db.session.scalar(db.select(Order).where(Order.cart_id == self.id).limit(1))


class Reference(db.Model):
    __tablename__ = "references"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("carts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(KeyString, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_by: Mapped[str | None] = mapped_column(String(100))

    order: Mapped[Order | None] = relationship(back_populates="references")
    cart: Mapped[Cart | None] = relationship(back_populates="references")

    __table_args__ = (
        CheckConstraint(
            "(order_id IS NULL) <> (cart_id IS NULL)", name="reference_has_one_owner"
        ),
        only_where_set("ix_references_cart_id", "cart_id"),
    )


class SearchField(StrEnum):
    ORDER_REFERENCE = "order_reference"
    CART_KEY = "cart_key"
    CART_UUID = "cart_uuid"
    CART_NAME = "cart_name"
    CUSTOMER_REFERENCE = "customer_reference"
    EMAIL = "email"


class SearchTerm(db.Model):
    """The matching key of a record's own searchable fields (references carry theirs themselves).

    Customer fields are kept once per customer and lead to the customer's orders and carts.
    """

    __tablename__ = "search_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(KeyString, index=True)
    field: Mapped[str] = mapped_column(String(24))
    record_type: Mapped[str] = mapped_column(String(16))  # order, cart, customer
    record_id: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_search_terms_record", "record_type", "record_id"),)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[role]


class AuditHead(db.Model):
    """One row: the last link of the audit chain.

    Appending updates this row first, which takes the row's write lock on PostgreSQL and the
    database write lock on SQLite, so two transactions can never chain onto the same event.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(db.Model):
    """Append-only; see audit.py for the hash chain that makes edits and deletions visible."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # user, api, system
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    record_type: Mapped[str | None] = mapped_column(String(16))
    record_key: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(16))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_record", "record_type", "record_key", "seq"),
        Index("ix_audit_actor", "actor_name", "seq"),
        Index("ix_audit_action", "action", "seq"),
    )
