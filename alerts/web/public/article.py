"""An alert's public text as a web page: its paragraphs, lists, headings and signature, with
links and email addresses made clickable — read from the plain text the public form renders
(the templates' text form: ``  - item`` lines are lists, a line in capitals is a heading,
``--`` starts the signature), so the page says exactly what the emails say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from markupsafe import Markup, escape

_ITEM = re.compile(r"^\s*[-•*]\s+(.*)$")
_LINK = re.compile(r"(https?://[^\s<>\"')\]]+[^\s<>\"')\].,;:!?])|([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


@dataclass(frozen=True, slots=True)
class Block:
    """One block of the article: ``p`` (lines), ``ul`` (items), ``h2`` (one line), ``sig`` (lines)."""

    kind: str
    lines: tuple[str, ...]


def blocks(text: str) -> list[Block]:
    """The text's blocks, in order (a paragraph's lead-in line before a list stays a paragraph)."""
    out: list[Block] = []
    signature = False
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in chunk.splitlines() if line.strip()]
        if lines and lines[0].strip() == "--":
            signature, lines = True, lines[1:]
        if not lines:
            continue
        if signature:
            out.append(Block("sig", tuple(line.strip() for line in lines)))
            continue
        prose: list[str] = []
        items: list[str] = []
        for line in lines:
            item = _ITEM.match(line)
            if item:
                if prose:
                    out.extend(_prose(prose))
                    prose = []
                items.append(item.group(1).strip())
                continue
            if items:
                out.append(Block("ul", tuple(items)))
                items = []
            prose.append(line.strip())
        if prose:
            out.extend(_prose(prose))
        if items:
            out.append(Block("ul", tuple(items)))
    return out


def _prose(lines: list[str]) -> list[Block]:
    """A run of lines: a first line in capitals ("TAKE ACTION") is a heading of its own."""
    first = lines[0]
    if first.isupper() and len(first) <= 80:
        return [Block("h2", (first,)), *([Block("p", tuple(lines[1:]))] if lines[1:] else [])]
    return [Block("p", tuple(lines))]


def linkify(text: str) -> Markup:
    """``text`` escaped, with web links and email addresses as links (no script can get in:
    everything is escaped first, and only http(s) and mailto links are made)."""
    parts: list[str] = []
    last = 0
    for match in _LINK.finditer(text):
        parts.append(str(escape(text[last : match.start()])))
        url, address = match.group(1), match.group(2)
        if url:
            parts.append(f'<a href="{escape(url)}" rel="nofollow noopener">{escape(url)}</a>')
        else:
            parts.append(f'<a href="mailto:{escape(address)}">{escape(address)}</a>')
        last = match.end()
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))


def share_links(url: str, title: str) -> list[tuple[str, str]]:
    """(label, link) to share the alert by email, Telegram, WhatsApp, Mastodon and X — plain
    links that open the other service; the page loads nothing from any of them."""
    u, t = quote(url, safe=""), quote(title, safe="")
    return [
        ("Email", f"mailto:?subject={t}&body={u}"),
        ("Telegram", f"https://t.me/share/url?url={u}&text={t}"),
        ("WhatsApp", f"https://wa.me/?text={t}%20{u}"),
        ("Mastodon", f"https://mastodonshare.com/?text={t}&url={u}"),
        ("X", f"https://twitter.com/intent/tweet?url={u}&text={t}"),
    ]
