"""delivery: from an approved alert to delivery events. May import ``alerts.core``,
``alerts.store``, ``alerts.accounts``, ``alerts.contacts``, ``alerts.compose`` and ``channels``.

Holds ``audience`` (the audience expanded in SQL), ``outbox`` (fan-out: one Delivery per
(alert, contact, channel) in one transaction), ``publish`` (now or at the embargo time),
``claim`` (due deliveries under a lease), ``messages`` (the per-recipient message),
``dispatch`` (claim → channel → outcome; ``give_way``: its senders wait while ``alerts
serve`` answers an officer's read), ``recorder`` (outcomes written in batches), ``retry``
(the one retry policy), ``controls`` (pause, resume, resend, test send), ``tracking``
(counts and listings), ``links`` (opt-in tracking tokens), ``bounces`` and ``bounce_scan``
(reading bounce reports), ``inbound`` (applying them) and ``lmtp`` (the listener),
``archive`` and ``cap`` (the public archive, Atom and CAP 1.2).
"""
