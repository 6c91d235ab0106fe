"""cli: the ``alerts`` command, the top layer. May import everything of ``alerts`` except the
other faces: ``alerts.web`` and ``alerts.bot`` only run through ``alerts.service``
(``alerts serve|worker|demo``).

Holds ``parser`` (argparse and ``main``), ``commands`` and ``commands_service`` (one thin
handler per subcommand: parse, call one action, print), ``textio`` (case files in, JSON out),
``progress`` (``send --wait``), ``demo`` and ``capture`` (``alerts demo`` with a local SMTP
capture server), ``templates`` (``templates list|check``) and ``operate`` (``doctor``, ``backup``:
``alerts.ops``). Each module with subcommands of its own adds their parsers (``add_parsers``).
"""
