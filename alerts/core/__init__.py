"""core: the words every step shares. Imports nothing of ``alerts`` outside ``alerts.core``.

Holds ``config`` (alerts.toml → frozen dataclasses), ``errors`` (every error, with its code and
HTTP status), ``states`` (delivery states, events, reasons and their transitions), ``types``
(values passed between steps: rendered messages, outcomes, recipients), ``clock`` (aware UTC),
``urls`` (the officers' and public links, built once), ``hrefs`` (where links sit in an HTML
body), ``signing`` (every signed token, with key rotation), ``metrics`` (this process's
Prometheus figures) and ``logs`` (text or JSON lines, ids, redaction). ``channels`` may
import this package and nothing else of ``alerts``.
"""
