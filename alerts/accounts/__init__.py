"""accounts: officers' accounts. May import ``alerts.core`` and ``alerts.store``.

Holds ``users``: users and roles (``check``: may this user do this action), password hashes,
API tokens, disabling and enabling.
"""
