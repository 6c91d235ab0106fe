"""An organisation's own template family, written from scratch (not a copy of a shipped one):
a short solidarity note, in English and French, on the shipped ``_base`` layouts."""

from __future__ import annotations

from pathlib import Path

FAMILY = "solidarity-note"

FILES = {
    "family.toml": """\
description = "Solidarity note: a short message of support for a defender."

[variables.defender]
type = "string"
required = true
description = "The defender's name."

[variables.country]
type = "text"
required = true
description = "Where the defender is."

[variables.city]
type = "text"
description = "City for the press dateline."

[variables.date]
type = "date"
required = true
description = "Date of the note."

[variables.organisation]
type = "string"
required = true
description = "Who sends the note."

[variables.organisation_description]
type = "text"
description = "About the organisation (press notes)."

[variables.message]
type = "text"
required = true
description = "The note itself."

[variables.authorities]
type = "authorities"
required = true
description = "Who it is addressed to."

[variables.contact]
type = "contact"
required = true
description = "Who answers questions."
""",
    "example.toml": """\
defender = "Rosa Imbert"
country = { en = "Veluria", fr = "Vélurie" }
date = 2030-03-01
organisation = "Friends of Defenders (example)"
message = { en = "We stand with Rosa.", fr = "Nous sommes aux côtés de Rosa." }

[[authorities]]
name = "Ilan Deveraux"
title = "Minister of the Interior"
form_of_address = "Dear Minister"

[contact]
name = "Sam Okafor"
email = "sam@example.org"
""",
    "messages/en.toml": """\
note_subject = "Solidarity with {defender} ({country})"
note_lead = "A note of solidarity:"
""",
    "messages/fr.toml": """\
note_subject = "Solidarité avec {defender} ({country})"
note_lead = "Un message de solidarité :"
""",
    "subject.txt.j2": "{{ t.note_subject|fill(defender=case.defender, country=case.country) }}\n",
    "body.txt.j2": "{{ t.note_lead }}\n\n{{ case.message }}\n",
    "body.html.j2": "<p>{{ t.note_lead }}</p>\n<p>{{ case.message }}</p>\n",
    "telegram.html.j2": "<b>{{ t.note_subject|fill(defender=case.defender, country=case.country) }}</b>\n\n{{ case.message }}\n",
}


def write_own_family(folder: Path) -> Path:
    """Write the family into ``folder/solidarity-note``; returns that folder."""
    family = folder / FAMILY
    for name, text in FILES.items():
        path = family / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return family
