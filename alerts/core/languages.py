"""The languages of the service's own pages (officers' and public), English first: a user's
language setting is one of them (``alerts.actions.accounts.set_language``), and the web pages
are translated into each (``alerts.web.i18n``)."""

from __future__ import annotations

#: English first: the fallback, and the msgids themselves.
PAGE_LANGUAGES = ("en", "fr", "es")
