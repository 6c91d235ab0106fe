"""ops: what an operator runs around the service, not inside it.

``doctor`` (is this deployment ready: one ``Finding`` per check, ok/warn/fail with the fix),
its checks in ``local`` (config, database, disk, secret, templates) and ``remote`` (SMTP relay,
Telegram, DKIM in DNS, ``public_url``), and ``backup`` (SQLite's online backup; the pg_dump
command for PostgreSQL). May import every layer below the faces, and ``channels``; nothing
imports it but ``alerts.cli``.
"""
