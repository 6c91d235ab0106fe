"""A loopback DNS server (UDP, 127.0.0.1, port 0) answering TXT queries from a dict, built with
dnspython's own message classes; ``dnsd.resolver()`` is a dnspython resolver that asks only it.

``dnsd.txt["s1._domainkey.example.org"] = "v=DKIM1; k=rsa; p=…"`` publishes a record (split into
255-byte character-strings, as DNS must carry a 2048-bit key); any other name is NXDOMAIN;
``dnsd.stall = True`` stops answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


@dataclass
class DNSServer(asyncio.DatagramProtocol):
    """The records, the queries received, and the port it listens on."""

    txt: dict[str, str] = field(default_factory=dict)
    stall: bool = False
    queries: list[str] = field(default_factory=list)
    port: int = 0
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if self.stall:
            return
        response = dns.message.make_response(query)
        if name not in self.txt:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            text = self.txt[name]
            chunks = " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))
            response.answer.append(
                dns.rrset.from_text(question.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
            )
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def resolver(self) -> dns.asyncresolver.Resolver:
        """A resolver that asks this server only."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        return resolver


@pytest.fixture
async def dnsd() -> AsyncIterator[DNSServer]:
    """A loopback DNS server; see the module docstring."""
    loop = asyncio.get_running_loop()
    server = DNSServer()
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    server.port = transport.get_extra_info("sockname")[1]
    try:
        yield server
    finally:
        transport.close()
