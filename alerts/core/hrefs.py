"""Where the links and the tracking pixel sit in a rendered HTML body, found once.

The opt-in engagement tracking (``alerts.delivery.links``) signs a token for each link it
finds here, and the MIME builder (``channels.mime``) puts the tracked URLs and the pixel back
at the very same places, so the two can never disagree about which links are tracked.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

#: ``href="http(s)://…"`` in rendered HTML (Jinja2 autoescape: a value never holds a ``"``).
_HREF = re.compile(r"""\bhref="(https?://[^"<>\s]{1,2000})\"""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
#: Longest URL a tracking token may carry.
MAX_URL = 2000


def is_trackable(url: str) -> bool:
    """An http(s) URL of printable ASCII without spaces, short enough for a token."""
    return (
        url.lower().startswith(("http://", "https://"))
        and len(url) <= MAX_URL
        and url.isascii()
        and url.isprintable()
        and " " not in url
    )


@lru_cache(maxsize=256)
def link_spans(html_text: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, URL) of every http(s) ``href`` value in ``html_text``; the span is the
    attribute text as written (HTML-escaped), the URL its unescaped value. Cached per HTML."""
    spans = []
    for match in _HREF.finditer(html_text):
        url = html.unescape(match.group(1))
        if is_trackable(url):
            spans.append((match.start(1), match.end(1), url))
    return tuple(spans)


def pixel_position(html_text: str) -> int:
    """Where the pixel goes: just before the last ``</body>``, else at the end."""
    ends = [match.start() for match in _BODY_END.finditer(html_text)]
    return ends[-1] if ends else len(html_text)
