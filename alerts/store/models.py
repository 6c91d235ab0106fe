"""SQLAlchemy 2 tables. Enum-like columns store the StrEnum values as strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from alerts.core.clock import utcnow
from alerts.core.states import AlertStatus, EventType

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# A nullable JSON column: Python None is SQL NULL. A plain ``JSON`` stores None as the JSON
# text ``null``, which ``IS NULL`` does not match: contacts saved with "no channel preference"
# that way were left out of every fan-out (issue 10). Use this for every nullable JSON column.
NullableJSON = JSON(none_as_null=True)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both backends."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """Someone who signs in: admin, officer, reviewer or viewer."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    telegram: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # signed into session cookies: bumping it ends every session of the user (auth.py)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # an API token that may only read (GET): every other method is refused (web/api/routes.py)
    token_read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # two-factor sign-in (accounts/two_factor.py): the confirmed TOTP secret (None: not enrolled),
    # the one shown while enrolling, and the last time step accepted (a code is used only once)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_pending: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # the language of their pages (alerts.core.languages); None: the browser's
    language: Mapped[str | None] = mapped_column(String(8))


class RecoveryCode(Base):
    """A two-factor recovery code (its SHA-256 only), usable once instead of a TOTP code."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RevokedSession(Base):
    """A signed-out session's nonce, refused by every process until the cookie expires anyway."""

    __tablename__ = "revoked_sessions"
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignInAttempt(Base):
    """A sign-in attempt in flight or failed, counted against one limit key (signin_limits.py)."""

    __tablename__ = "sign_in_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SubscribeAttempt(Base):
    """A subscribe request, or a confirmation mail it spent, counted against one limit key
    (``alerts.contacts.subscribe_limits``)."""

    __tablename__ = "subscribe_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignInLock(Base):
    """An account locked after too many failed sign-ins, until an admin unlocks it."""

    __tablename__ = "sign_in_locks"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Contact(Base):
    """A recipient: an authority, journalist, partner or member of the public."""

    __tablename__ = "contacts"
    # the contacts list's order: its first page is read from the index, not sorted from the
    # whole network (migration 0015)
    __table_args__ = (Index("ix_contacts_name_id", "name", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    # lower-cased email: the identity used to merge imports ("same email updates")
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    telegram: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    organisation: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))  # authorities: "Minister of Justice"
    form_of_address: Mapped[str | None] = mapped_column(String(200))  # "Your Excellency"
    # channels this contact wants (None: every channel they have an address for)
    channels: Mapped[list[str] | None] = mapped_column(NullableJSON)
    topics: Mapped[list[str] | None] = mapped_column(NullableJSON)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|pending|unsubscribed|erased
    token: Mapped[str] = mapped_column(String(64), unique=True)  # for unsubscribe/preferences links
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ContactList(Base):
    """A named mailing list of contacts."""

    __tablename__ = "lists"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ListMember(Base):
    """Membership of a contact in a list."""

    __tablename__ = "list_members"
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Alert(Base):
    """An urgent alert about a case; its texts live in versions."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    family: Mapped[str] = mapped_column(String(64))  # template family
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # audience: {"lists": [...], "kinds": [...], "channels": [...], "languages": [...]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))  # updates thread here
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    embargo_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_email: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    versions: Mapped[list[AlertVersion]] = relationship(
        back_populates="alert", order_by="AlertVersion.number", lazy="selectin"
    )

    @property
    def sending_now(self) -> bool:
        """Sending and not paused: its deliveries are being claimed and sent."""
        return self.status == AlertStatus.SENDING and not self.paused


class AlertVersion(Base):
    """One version of an alert's case data; editing an approved alert makes a new one."""

    __tablename__ = "alert_versions"
    __table_args__ = (UniqueConstraint("alert_id", "number"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    case_data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    alert: Mapped[Alert] = relationship(back_populates="versions")


class Approval(Base):
    """A reviewer's approval of one language of one alert version."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("version_id", "language"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("alert_versions.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    approved_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base):
    """The defender's consent to publicity: who recorded it, when, and its scope."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # public | restricted
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class AlertAttachment(Base):
    """A file (PDF, image) sent with the press release of an alert."""

    __tablename__ = "alert_attachments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One (alert, contact, channel): the durable outbox row and its current state."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "contact_id", "channel"),
        Index("ix_deliveries_due", "state", "channel", "next_attempt_at"),
        Index("ix_deliveries_alert_state", "alert_id", "channel", "state"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # no foreign key to alerts (migration 0014: a checked, locked alert row per delivery written;
    # only the fan-out writes deliveries, holding its alert's row, and no alert is ever deleted)
    alert_id: Mapped[int] = mapped_column(BigId)
    # the key to contacts stays: its lock and ON DELETE SET NULL keep an erased contact from
    # getting a delivery written at the same moment
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))  # contact kind at fan-out
    language: Mapped[str] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(320))  # snapshot at fan-out; erased with the contact
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(255))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    unknown_outcomes: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: The events ``ix_delivery_events_alert_type`` holds: opens and clicks
#: (``store.events.is_engagement`` writes the condition).
ENGAGEMENTS = (str(EventType.OPENED), str(EventType.CLICKED))
ENGAGED_SQL = f"type IN ({', '.join(repr(t) for t in ENGAGEMENTS)})"


class DeliveryEvent(Base):
    """Append-only history of a delivery: every state change and engagement."""

    __tablename__ = "delivery_events"
    __table_args__ = (
        # an alert's events by id: those after the last read (over_time.Charts)
        Index("ix_delivery_events_alert_id", "alert_id", "id"),
        # an alert's opens and clicks (tracking.figures) without reading all its events; those
        # alone (migration 0013): the fan-out's million "queued" events are not written into it
        Index(
            "ix_delivery_events_alert_type",
            "alert_id",
            "type",
            postgresql_where=text(ENGAGED_SQL),
            sqlite_where=text(ENGAGED_SQL),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # no foreign keys (migrations 0012 and 0013: each cost a checked, locked row per event
    # written); retention deletes a delivery's events with it, by alert id
    delivery_id: Mapped[int | None] = mapped_column(BigId, index=True)
    alert_id: Mapped[int] = mapped_column(BigId)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)  # raw provider answer


class Suppression(Base):
    """An address on a channel that must receive nothing more."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | telegram | webhook
    address_key: Mapped[str] = mapped_column(String(320))  # lower-cased email / chat id
    reason: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrunedCount(Base):
    """What ``alerts prune`` keeps of an alert whose deliveries and events it deleted: per channel,
    how many deliveries ended in each state, and how many were opened or clicked (``name``)."""

    __tablename__ = "pruned_counts"
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(16), primary_key=True)  # a delivery state, opened, clicked
    n: Mapped[int] = mapped_column(Integer)


class Response(Base):
    """An authority's (or anyone's) answer to an alert, recorded by an officer."""

    __tablename__ = "responses"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    # who answered, as the officer wrote it, when no contact matched (None when linked to a
    # contact: the contact row is then the one record of them, and erasing it erases them here)
    sender: Mapped[str | None] = mapped_column(String(320))
    summary: Mapped[str] = mapped_column(Text)
    responded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Followup(Base):
    """A reminder, update or scheduled send; the row is the truth, the scheduler only fires it."""

    __tablename__ = "followups"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    condition: Mapped[str | None] = mapped_column(String(32))  # no_response | case_open
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late_seconds: Mapped[float | None] = mapped_column()
    result: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """Who did what, when. Append-only."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # The hash chain (alerts.store.audit): the previous entry's hash, and this entry's own.
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
