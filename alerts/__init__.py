"""Urgent Alerts: draft, approve, fan out, track and follow up urgent alerts for defenders at risk.

One package per step, each importing only the layers below it (docs/ARCHITECTURE.md; checked
by ``lint-imports``), lowest first: ``core`` < ``store`` < ``accounts`` < ``contacts`` |
``compose`` < ``delivery`` < ``app`` < ``followups`` < ``actions`` < ``web`` | ``bot`` <
``service`` < ``cli``. The channel adapters (``channels``) import only ``alerts.core``.
"""

__version__ = "0.1.0"
