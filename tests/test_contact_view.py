"""The contact action's view as the API shows it, and its refusal of a taken address."""

from __future__ import annotations

import pytest

from alerts.actions import contacts
from alerts.app import open_app
from alerts.core.config import Settings
from alerts.core.errors import Conflict
from tests.factories import make_users


async def test_an_added_contacts_view_carries_its_channel_choice_and_times(db_url: str) -> None:
    async with open_app(Settings().replace("database", url=db_url)) as app:
        async with app.sessions.begin() as session:
            officer, _ = await make_users(session)
        fields = {"name": "Desk", "email": "desk@example.org", "telegram": "@desk_chat", "kind": "media"}
        view = await contacts.add(app, officer, fields={**fields, "channels": ["telegram"]}, lists=["press"])
        shown = view.to_json()
        assert (shown["channels"], shown["topics"], shown["lists"]) == (["telegram"], None, ["press"])
        assert shown["created_at"] == view.created_at.isoformat() and "token" not in str(shown)
        with pytest.raises(Conflict) as taken:
            await contacts.add(app, officer, fields={**fields, "name": "Desk again", "telegram": None})
        assert taken.value.details == {"field": "email", "contact": view.id}  # who has it already
