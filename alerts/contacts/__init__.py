"""contacts: the people alerts go to. May import ``alerts.core``, ``alerts.store`` and
``alerts.accounts`` (not ``alerts.compose``: the two are independent siblings).

Holds ``fields`` (the one validator of a contact field), ``directory`` (contacts and lists),
``csv_import`` and ``batch`` (streaming CSV import and export), ``subscriptions`` (double
opt-in, signed link tokens, preferences), ``suppressions`` (addresses that get nothing more)
and ``erasure`` (export or erase one person's data).
"""
