"""One rule in every face: the control-character policy (alerts.core.text) refuses the same
input, naming the field, from the API, the officers' pages and the CLI."""

from __future__ import annotations

import html

from sqlalchemy import func, select

from alerts.store.models import Contact
from tests.parity.conftest import Faces

NAME = "Ana \u202eRuiz"  # a right-to-left override: the name would display reversed
REFUSAL = "name: control character U+202E at position 5 is not allowed"


async def _contacts(faces: Faces) -> int:
    async with faces.app.sessions() as session:
        return (await session.execute(select(func.count()).select_from(Contact))).scalar_one()


async def test_a_control_character_in_a_contact_name_is_refused_by_every_face(faces: Faces) -> None:
    fields = {"name": NAME, "email": "ana@example.org", "kind": "media"}
    # the web's edge refuses it (400) before the contact's own check would (422): same words
    status, body = await faces.api("officer", "POST", "/contacts", json=fields)
    assert status == 400, body
    assert body["error"]["message"] == REFUSAL
    assert body["error"]["details"]["field"] == "name"

    page = await faces.page("officer")
    response = await page.post("/office/contacts/new", fields)
    assert response.status == 400
    assert html.escape(REFUSAL) in await response.text()

    csv = faces.cwd / "contacts.csv"
    csv.write_text(
        f"name,email,telegram,kind,language,organisation,country,lists\n{NAME},ana@example.org,,media,,,,\n",
        encoding="utf-8",
    )
    run = await faces.cli("contacts", "import", str(csv))
    assert run.code != 0
    assert f"row 2: {REFUSAL}" in run.out

    assert await _contacts(faces) == 0
