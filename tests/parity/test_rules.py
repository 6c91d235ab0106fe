"""One rule in every face: the control-character policy (alerts.core.text) refuses the same
input, naming the field, from the API, the officers' pages and the CLI: in a contact's name and
in an alert's case data."""

from __future__ import annotations

import html
import re
from pathlib import Path

from sqlalchemy import func, select

from alerts.store.models import Alert, Contact
from alerts.web.ui.casetoml import dumps
from tests.parity.conftest import Faces
from tests.parity.test_workflow import EXAMPLE, draft
from tests.web import P

NAME = "Ana \u202eRuiz"  # a right-to-left override: the name would display reversed
REFUSAL = "name: control character U+202E at position 5 is not allowed"


async def _contacts(faces: Faces) -> int:
    async with faces.app.sessions() as session:
        return (await session.execute(select(func.count()).select_from(Contact))).scalar_one()


async def test_a_control_character_in_a_contact_name_is_refused_by_every_face(faces: Faces) -> None:
    fields = {"name": NAME, "email": "ana@example.org", "kind": "media"}
    status, body = await faces.api("officer", "POST", "/contacts", json=fields)
    assert status == 422, body
    assert body["error"]["message"] == REFUSAL
    assert body["error"]["details"]["field"] == "name"

    page = await faces.page("officer")
    response = await page.post("/office/contacts/new", fields)
    assert response.status == 422
    assert html.escape(REFUSAL) in await response.text()

    csv = faces.cwd / "contacts.csv"
    csv.write_text(
        f"name,email,telegram,kind,language,organisation,country,lists\n{NAME},ana@example.org,,media,,,,\n",
        encoding="utf-8",
    )
    run = await faces.cli("contacts", "import", str(csv))
    assert run.code != 0
    assert f"row 2: {REFUSAL}" in run.err

    assert await _contacts(faces) == 0


async def test_a_control_character_in_case_data_is_refused_by_every_face_naming_the_field(
    faces: Faces, tmp_path: Path
) -> None:
    """BEL (a Word table-cell mark) in the third fact: the same refusal, naming ``facts.en[2]``,
    from the API, the officers' editor and the CLI; the alert keeps its one version."""
    alert_id = await draft(faces)
    facts = list(EXAMPLE["facts"]["en"])
    facts[2] = "11 March:\x07 the police denied holding her."
    changed = {**EXAMPLE, "facts": {**EXAMPLE["facts"], "en": facts}}
    refusal = "case data: facts.en[2]: control character U+0007 at position 10 is not allowed"

    status, body = await faces.api("officer", "PATCH", f"/alerts/{alert_id}", json={"data": changed})
    assert status == 422, body
    assert body["error"]["message"] == refusal
    assert body["error"]["details"]["field"] == "case data: facts.en[2]"

    page = await faces.page("officer")
    await page.get(f"{P}/alerts/{alert_id}/edit")
    form = [
        ("case_toml", dumps(changed)),
        ("title", "T"),
        ("lists", "urgent-appeals"),
        ("channels", "email"),
        ("languages", "en"),
    ]
    response = await page.post(f"{P}/alerts/{alert_id}/edit", form)
    assert response.status == 422
    page_text = await response.text()
    assert html.escape(refusal) in page_text, re.findall(r"class=\"error[^<]*<[^<]*", page_text)

    case_file = tmp_path / "case.toml"
    case_file.write_text(dumps(changed), encoding="utf-8")
    run = await faces.cli("alert", "edit", str(alert_id), "--data", str(case_file), "--as", "officer")
    assert run.code == 2 and refusal in run.err, (run.code, run.err)

    async with faces.app.sessions() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None and alert.current_version == 1
