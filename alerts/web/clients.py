"""The client's address, as sign-in and subscribe limits key on it: the peer's, or, behind one
of ``[server] trusted_proxies``, the right-most ``X-Forwarded-For`` entry that is not itself a
trusted proxy (entries further left are the client's to forge).
"""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from alerts.core.errors import ConfigError

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def trusted_networks(text: str) -> tuple[_Network, ...]:
    """``[server] trusted_proxies`` (comma-separated addresses or networks) parsed; ConfigError if bad."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"[server] trusted_proxies: {item!r} is not an IP address or network",
                details={"key": "server.trusted_proxies"},
            ) from None
    return tuple(out)


def _trusted(address: str, networks: tuple[_Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy (entries further left are the
    client's to forge). Sign-in and subscribe limits are keyed on it."""
    from alerts.web.base import APP

    remote = request.remote or "unknown"
    networks = trusted_networks(request.app[APP].settings.server.trusted_proxies)
    if not networks or not _trusted(remote, networks):
        return remote
    forwarded = request.headers.getall("X-Forwarded-For", [])
    hops = [hop.strip() for value in forwarded for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from a proxy: fall back to the proxy itself
        if not any(ip in net for net in networks):
            return str(ip)
    return remote


def peer_is_trusted(request: web.Request) -> bool:
    """Whether the connecting peer is one of ``[server] trusted_proxies`` (its headers count)."""
    from alerts.web.base import APP

    networks = trusted_networks(request.app[APP].settings.server.trusted_proxies)
    return bool(networks) and _trusted(request.remote or "", networks)
