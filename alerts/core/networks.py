"""Client networks, as limits group them: an IPv4 /24 or an IPv6 /64.

One household, office or cloud tenant holds a whole IPv6 /64 (and often an IPv4 /24): a limit
keyed on single addresses is no limit at all there.
"""

from __future__ import annotations

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 64


def network_of(address: str) -> str:
    """The network a client address belongs to for limits (``203.0.113.0/24``, ``2001:db8::/64``);
    an IPv4-mapped IPv6 address counts as IPv4; anything unparseable is its own network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
