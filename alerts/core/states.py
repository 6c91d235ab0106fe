"""The one vocabulary of states, events and reasons (DESIGN.md, "Delivery states").

A delivery moves through these states; every move appends a ``DeliveryEvent`` whose type
is the new state's word, or an engagement word (``opened``, ``clicked``…) that leaves the
state alone. ``TRANSITIONS`` lists every allowed move; ``alerts.store.events`` refuses any other.
Values are stored in SQL as the lower-case strings, never as member names.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """Where one (alert, contact, channel) delivery stands."""

    QUEUED = "queued"  # Delivery row written by fan-out; due at next_attempt_at
    SENDING = "sending"  # claimed by a dispatcher; lease running until lease_until
    SENT = "sent"  # transport accepted it (provider id recorded)
    DELIVERED = "delivered"  # receipt confirmed by the provider
    DEFERRED = "deferred"  # transient failure; retry at next_attempt_at
    FAILED = "failed"  # permanent failure, or retries exhausted
    BOUNCED = "bounced"  # hard bounce reported after it was sent
    SUPPRESSED = "suppressed"  # unsubscribed, blocked the bot, or bounced before
    CANCELLED = "cancelled"  # alert closed or delivery withdrawn before it was sent


class EventType(StrEnum):
    """What a ``DeliveryEvent`` records: a state change or a later engagement."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    # The transport gave no answer after the message data was sent: it may or may not
    # have arrived. Recorded as such; retried once after a grace period with the same
    # Message-ID, never in a tight loop.
    UNKNOWN = "unknown"
    RELEASED = "released"  # lease given back on shutdown / expired lease reclaimed
    OPENED = "opened"  # engagement: tracking pixel (off by default)
    CLICKED = "clicked"  # engagement: tracked link (off by default)
    UNSUBSCRIBED = "unsubscribed"  # recipient unsubscribed via this delivery
    COMPLAINED = "complained"  # recipient reported it as spam
    RESPONDED = "responded"  # an authority answered the alert


class SuppressionReason(StrEnum):
    """Why an address on a channel receives nothing more."""

    UNSUBSCRIBED = "unsubscribed"
    BLOCKED = "blocked"  # Telegram: the user blocked the bot / is deactivated
    BOUNCED = "bounced"  # hard bounce (5xx on the recipient, or an RFC 3464 report)
    COMPLAINED = "complained"
    ERASED = "erased"  # contact erased on request (GDPR)
    MANUAL = "manual"


class AlertStatus(StrEnum):
    """The life of an alert (issue: draft → in_review → approved → sending → sent → closed)."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SCHEDULED = "scheduled"  # approved and waiting for its embargo time
    SENDING = "sending"
    SENT = "sent"  # every delivery reached a final state
    CLOSED = "closed"


class ContactKind(StrEnum):
    """Kinds of contact; each kind gets its own form of the alert."""

    AUTHORITY = "authority"
    MEDIA = "media"
    PRESS = "press"
    PARTNER = "partner"
    PUBLIC = "public"


class Role(StrEnum):
    """User roles, from most to least powerful."""

    ADMIN = "admin"
    OFFICER = "officer"
    REVIEWER = "reviewer"
    VIEWER = "viewer"


class FollowupKind(StrEnum):
    """What a follow-up does when it fires."""

    REMINDER = "reminder"
    UPDATE = "update"
    SEND = "send"
    DIGEST = "digest"


S = DeliveryState

#: Every allowed delivery state change (from -> set of to).
TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    S.QUEUED: frozenset({S.SENDING, S.SUPPRESSED, S.CANCELLED, S.FAILED}),
    S.SENDING: frozenset({S.SENT, S.DEFERRED, S.FAILED, S.SUPPRESSED, S.QUEUED}),
    S.DEFERRED: frozenset({S.SENDING, S.SUPPRESSED, S.CANCELLED, S.FAILED, S.QUEUED}),
    S.SENT: frozenset({S.DELIVERED, S.BOUNCED}),
    S.DELIVERED: frozenset({S.BOUNCED}),
    # resend-failed gives a failed delivery a new attempt (never one that was sent).
    S.FAILED: frozenset({S.QUEUED}),
    S.BOUNCED: frozenset(),
    S.SUPPRESSED: frozenset(),
    S.CANCELLED: frozenset({S.QUEUED}),
}

#: States in which a delivery needs no more work from a dispatcher.
FINAL_STATES: frozenset[DeliveryState] = frozenset(
    {S.SENT, S.DELIVERED, S.FAILED, S.BOUNCED, S.SUPPRESSED, S.CANCELLED}
)

#: States a dispatcher may claim (when next_attempt_at is due).
CLAIMABLE_STATES: frozenset[DeliveryState] = frozenset({S.QUEUED, S.DEFERRED})


def can_transition(old: DeliveryState, new: DeliveryState) -> bool:
    """Whether a delivery may move from ``old`` to ``new``."""
    return new in TRANSITIONS[old]
