"""Urgent Alerts: draft, approve, fan out, track and follow up urgent alerts for defenders at risk."""

__version__ = "0.1.0"
