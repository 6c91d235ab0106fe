"""web/public: the pages anyone may open, no sign-in. May import ``alerts.web.base``, ``auth``,
``bodies``, ``alerts.actions`` and everything below it; never the JSON API or the officers' pages.

Holds ``pages`` (shared state and page helpers), ``subscribe`` (subscribe, confirm,
unsubscribe, preferences), ``archive`` (public alerts, Atom, CAP), ``engagement`` (opt-in
tracking links) and ``table`` (registers them all).
"""
