"""store: the database. May import ``alerts.core`` only.

Holds ``db`` (engine and sessions; the SQLite/PostgreSQL differences live here), ``models``
(the tables), ``migrate`` and ``migrations`` (Alembic), ``events`` (append a DeliveryEvent,
refuse a transition ``states`` forbids), ``audit`` (who did what, append-only) and
``pending_sends`` (``send`` follow-ups kept in step with their alert's schedule).
"""
