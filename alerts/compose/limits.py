"""What an alert template may do, and how much: the sandbox's caps and allow-lists.

The policy of ``alerts.compose.sandbox`` (which enforces it), kept apart so that a cap or an
allowed filter is changed here and read in one place. A filter or global absent from these
lists does not exist for templates; the ones that build output from a number (``center``,
``indent``, ``batch``, ``lipsum``, ``format``…) are left out on purpose.
"""

from __future__ import annotations

MAX_OUTPUT = 256 * 1024  # characters in one rendered text, or in any one value built
MAX_PRODUCED = 4 * MAX_OUTPUT  # characters written during one render, hidden buffers included
MAX_STEPS = 200_000  # loop iterations, calls, lookups, operators and filtered items per render
MAX_SECONDS = 2.0  # CPU time of one render (its thread's; not the wall clock)
MAX_POWER_BITS = 4096  # largest integer ``**`` may build
MAX_RANGE = 10_000  # items in one ``range()`` (jinja's own limit is 100,000)

SAFE_FILTERS = frozenset(
    {
        *("abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first"),
        *("float", "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max"),
        *("min", "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "sort"),
        *("string", "striptags", "sum", "title", "trim", "truncate", "unique", "upper", "urlencode"),
        "wordcount",
    }
)
SAFE_GLOBALS = frozenset({"range", "dict", "cycler", "joiner"})
# str methods whose result is never much bigger than the string itself.
SAFE_STR_METHODS = frozenset(
    {
        *("capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha"),
        *("isdigit", "islower", "isspace", "istitle", "isupper", "lower", "lstrip", "partition"),
        *("removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split"),
        *("splitlines", "startswith", "strip", "swapcase", "title", "upper"),
    }
)
FORMATTING = frozenset({"format", "format_map"})
