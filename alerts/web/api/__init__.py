"""web/api: the JSON API under /api/v1. May import ``alerts.web.base``, ``auth``, ``bodies``,
``alerts.actions`` and everything below it; never the officers' or the public pages.

Holds ``routes`` (Route, the request checks, ``endpoint``), one handler module per resource
(``alerts``, ``workflow``, ``contacts``, ``followups``), each with its ``ROUTES``, ``openapi``
(the document built from them) and ``table`` (the one list: registered and documented).
"""
