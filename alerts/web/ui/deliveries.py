"""An alert's deliveries as officers look for one: who (name, organisation, kind), on which
channel and in which language, its state and last error — searchable by name or organisation,
filterable by state and channel, paged, and exported as CSV. Addresses only for the roles that
may see contact details (``contacts.edit``)."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from alerts.compose import drafts
from alerts.core.errors import ValidationError
from alerts.core.ids import MAX_PAGE, parse_number
from alerts.core.states import DeliveryState
from alerts.core.text import spreadsheet_safe
from alerts.delivery import tracking
from alerts.web.ui.alerts import CHANNELS, alert_id
from alerts.web.ui.pages import ID, Ctx, can, page
from alerts.web.ui.pages import PREFIX as P

PAGE_SIZE = 100
CSV_BATCH = 1000
CSV_COLUMNS = (
    "id",
    "contact_id",
    "name",
    "organisation",
    "audience",
    "channel",
    "language",
    "state",
    "attempts",
    "last_error",
    "updated_at",
)


def _filters(c: Ctx) -> dict[str, str]:
    """The page's filters, checked: state, channel and the search text (``q``)."""
    q = c.request.query
    state, channel, search = q.get("state", ""), q.get("channel", ""), q.get("q", "").strip()
    if state and state not in {s.value for s in DeliveryState}:
        raise ValidationError(f"state: {state!r} is not a delivery state.", details={"field": "state"})
    if channel and channel not in CHANNELS:
        raise ValidationError(
            f"channel: {channel!r} is not one of {', '.join(CHANNELS)}", details={"field": "channel"}
        )
    return {"state": state, "channel": channel, "q": search}


def _page_number(c: Ctx) -> int:
    return parse_number(c.request.query.get("page", "1"), "page", minimum=1, maximum=MAX_PAGE)


@page("view")
async def deliveries(c: Ctx) -> web.Response:
    """GET …/deliveries?q=&state=&channel=&page=: the deliveries table."""
    filters, number = _filters(c), _page_number(c)
    show_address = can(c.user, "contacts.edit")
    async with c.app.reads() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        rows = await tracking.deliveries(
            session,
            alert.id,
            state=filters["state"] or None,
            channel=filters["channel"] or None,
            search=filters["q"] or None,
            with_address=show_address,
            limit=PAGE_SIZE + 1,
            offset=(number - 1) * PAGE_SIZE,
        )
        stats = await tracking.stats(session, alert, count=c.app.counts.figures)
    return c.render(
        "deliveries.html",
        alert=alert,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=number,
        filters=filters,
        states=[s.value for s in DeliveryState],
        channels=CHANNELS,
        stats=stats,
        show_address=show_address,
    )


@page("view")
async def deliveries_csv(c: Ctx) -> web.StreamResponse:
    """GET …/deliveries.csv?q=&state=&channel=: every matching delivery, streamed in batches."""
    filters = _filters(c)
    show_address = can(c.user, "contacts.edit")
    aid = alert_id(c)
    async with c.app.reads() as session:
        await drafts.get_alert(session, aid)  # a 404 before the download starts
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="alert-{aid}-deliveries.csv"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(c.request)
    columns = (*CSV_COLUMNS, "address") if show_address else CSV_COLUMNS
    after = 0  # each batch starts past the last id written: the same cost at the millionth row
    while True:
        async with c.app.reads() as session:
            rows = await tracking.deliveries(
                session,
                aid,
                state=filters["state"] or None,
                channel=filters["channel"] or None,
                search=filters["q"] or None,
                with_address=show_address,
                limit=CSV_BATCH,
                after=after,
            )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        if after == 0:
            writer.writerow(columns)
        for row in rows:
            writer.writerow([spreadsheet_safe(row.get(col)) for col in columns])
        await response.write(out.getvalue().encode())
        if len(rows) < CSV_BATCH:
            break
        after = rows[-1]["id"]
    await response.write_eof()
    return response


def setup(webapp: web.Application) -> None:
    """Add the deliveries table and its CSV export."""
    webapp.router.add_get(f"{P}/alerts/{ID}/deliveries", deliveries)
    webapp.router.add_get(f"{P}/alerts/{ID}/deliveries.csv", deliveries_csv)
