"""followups: what happens after an alert is sent. May import everything below it: ``alerts.core``,
``store``, ``accounts``, ``contacts``, ``compose``, ``delivery``, ``alerts.app`` and ``channels``.

Holds ``add`` and ``manage`` (adding, listing and cancelling follow-ups), ``fire`` (claim a due
follow-up exactly once and act on it), ``notices`` and ``reminders`` (what officers are told),
``digest`` (weekly digests) and ``scheduler`` (APScheduler, one leader on PostgreSQL).
"""
