"""What a claim checks again before a due delivery goes out.

Fan-out checked the audience once; minutes or hours can pass before a delivery is due (a
retry, a paused alert, a scheduled send). ``withdraw_stale`` settles the picked rows that must
not go out any more, each with the reason an officer sees, and sends a corrected address
where the officer changed it meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ChannelName, address_key, address_space
from alerts.core.states import DeliveryState, EventType
from alerts.delivery.audience import contact_address_sql, needs_consent, public_withdrawn, suppression_key_sql
from alerts.store.events import append_events, event_row
from alerts.store.models import Contact, Delivery, Suppression

#: A delivery fan-out wrote or a retry put back, not yet claimed.
_WAITING = (str(DeliveryState.QUEUED), str(DeliveryState.DEFERRED))


def stale_reason(row: Any, withdrawn: set[int]) -> tuple[DeliveryState, str] | None:
    """Why a due delivery must not go out any more, if it must not.

    Fan-out checked all this once; the claim checks again because minutes or hours can pass
    before a delivery is due: the recipient may have unsubscribed, bounced or blocked the bot,
    the contact may have been deleted or erased, the case closed, the defender's consent to
    publicity withdrawn (``withdrawn``: the batch's alerts whose public contacts get nothing),
    or the contact reclassified (an authority made ``public`` would get the authorities'
    version without consent: any change of kind cancels, the officer sees why) or left with
    no address on the channel. A corrected address is not stale: ``_readdress`` sends there.
    """
    if row.alert_status == "closed":
        return DeliveryState.CANCELLED, "alert closed"
    if row.channel == ChannelName.WEBHOOK:
        return None
    if needs_consent(row.audience, row.channel) and row.alert_id in withdrawn:
        return DeliveryState.CANCELLED, "consent withdrawn"
    if row.contact_id is None or not row.address:
        return DeliveryState.CANCELLED, "contact deleted or erased"
    if row.contact_status == "unsubscribed":
        return DeliveryState.SUPPRESSED, "recipient unsubscribed"
    if row.contact_status != "active":
        return DeliveryState.CANCELLED, f"contact is {row.contact_status}"
    if row.contact_kind != row.audience:
        return DeliveryState.CANCELLED, f"contact is now {row.contact_kind}, was {row.audience} at fan-out"
    if not row.contact_address:
        return DeliveryState.CANCELLED, "contact has no address on this channel any more"
    if row.suppressed and row.contact_address == row.address:  # a corrected one: _readdress
        return DeliveryState.SUPPRESSED, "address suppressed since fan-out"
    return None


async def withdraw_stale(session: AsyncSession, picked: Sequence[Any], *, now: datetime) -> list[Any]:
    """Settle the picked rows that must not be sent; return the others.

    Consent is looked up once for the whole batch, and only when it holds public deliveries;
    the rows to settle are moved with one UPDATE per (state, reason).
    """
    public = {row.alert_id for row in picked if needs_consent(row.audience, row.channel)}
    withdrawn = await public_withdrawn(session, public) if public else set()
    keep: list[Any] = []
    events: list[dict[str, Any]] = []
    settle: dict[tuple[DeliveryState, str], list[int]] = {}
    for row in picked:
        stale = stale_reason(row, withdrawn)
        if stale is None and row.contact_id is not None and row.contact_address != row.address:
            stale, row = await _readdress(session, row, now=now)
        if stale is None:
            keep.append(row)
            continue
        state, why = stale
        settle.setdefault(stale, []).append(row.id)
        events.append(
            event_row(
                delivery_id=row.id,
                alert_id=row.alert_id,
                type=EventType(str(state)),
                at=now,
                from_state=row.state,
                to_state=str(state),
                attempt=row.attempts,
                detail=why,
            )
        )
    for (state, why), ids in settle.items():
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(state=str(state), next_attempt_at=None, last_error=why, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await append_events(session, events)
    return keep


async def _readdress(
    session: AsyncSession, row: Any, *, now: datetime
) -> tuple[tuple[DeliveryState, str] | None, Any]:
    """An officer corrected the contact's address since fan-out: the delivery goes to the new
    one (the old may be someone else's mailbox), unless the new one is suppressed or another
    recipient of the alert already gets it on this channel (one copy per address). Returns the
    stale reason, if any, and the row to send (with the new address)."""
    new = row.contact_address
    key = address_key(row.channel, new)
    if await session.scalar(
        select(Suppression.id).where(
            Suppression.channel == address_space(row.channel), Suppression.address_key == key
        )
    ):
        return (DeliveryState.SUPPRESSED, "corrected address is suppressed"), row
    namespace, delivery_key = suppression_key_sql(Delivery.channel, Delivery.address)
    _, contact_key = suppression_key_sql(Delivery.channel, contact_address_sql(Delivery.channel))
    shared = await session.scalar(
        select(Delivery.id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(
            Delivery.alert_id == row.alert_id,
            namespace == address_space(row.channel),
            delivery_key == key,
            Delivery.id != row.id,
            Delivery.state.not_in([str(DeliveryState.CANCELLED), str(DeliveryState.SUPPRESSED)]),
            # a delivery still waiting holds its fan-out address only while its contact keeps it
            # (contacts may share a Telegram chat): one whose contact moved away goes to the new
            # address when it is claimed, and one whose contact was deleted nowhere
            or_(Delivery.state.not_in(_WAITING), contact_key == key),
        )
        .limit(1)
    )
    if shared is not None:
        return (DeliveryState.CANCELLED, "corrected address already gets this alert"), row
    await session.execute(
        update(Delivery)
        .where(Delivery.id == row.id)
        .values(address=new, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return None, row._replace(address=new)  # the claim's row, a named tuple
