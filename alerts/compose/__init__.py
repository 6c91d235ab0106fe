"""compose: writing an alert until it may go. May import ``alerts.core``, ``alerts.store`` and
``alerts.accounts`` (not ``alerts.contacts``: the two are independent siblings).

Holds ``casedata`` (a template family's variables), ``sandbox`` (the hardened Jinja2
environment) with ``limits`` (its caps and allow-lists), ``families`` (where the shipped
families and an organisation's own are), ``render`` (template families and the renderer),
``family_check`` (``alerts templates check``), ``drafts`` (alerts, audience, versions),
``approval`` (review, approval by a second person, the defender's consent) and ``attachments``
(files checked before they are stored).
"""
