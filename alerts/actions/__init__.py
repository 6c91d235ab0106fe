"""Actions: ONE function per thing a person can do, called by every face.

An action takes the open ``App``, the acting ``User`` (or, for subscribers and the bot, the
token or chat that identifies them) and the parsed input. It checks the actor's role
(``accounts.users.check``), does the work in ONE transaction (``app.sessions.begin()``), writes
the audit entry in that transaction, and performs its side effects after the commit (notify
reviewers, cancel follow-ups, re-check consent), so a notice never precedes the state it
announces. It returns a frozen dataclass that says what happened; the faces (CLI, JSON API,
officers' pages, public pages, Telegram bot) only parse input, call the action and present
that result. Errors are ``alerts.core.errors`` subclasses, rendered the same way by every face.

May import every package of ``alerts`` below it (core, store, accounts, contacts, compose,
delivery, followups, app) and ``channels``; nothing imports it but the faces.
"""
