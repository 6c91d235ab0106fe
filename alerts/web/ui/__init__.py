"""web/ui: the officers' pages under /office. May import ``alerts.web.base``, ``auth``,
``bodies``, ``alerts.actions`` and everything below it; never the JSON API or the public pages.

Holds ``pages`` (the page framework: sign-in, roles, CSRF, errors), one module per area
(``alerts``, ``workflow``, ``contacts``, ``followups``, ``live``), ``casetoml`` and
``table`` (registers them all).
"""
