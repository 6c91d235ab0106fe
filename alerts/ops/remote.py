"""The doctor's checks of what the service talks to: the SMTP relay, the Telegram Bot API, the
DKIM record in DNS and ``public_url``. Each asks, never sends: no MAIL to the relay, no message
to a chat. No token or password is printed."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import dkim.crypto
import dns.asyncresolver
import dns.exception
import dns.resolver

from alerts.core.config import Settings
from alerts.core.errors import ConfigError
from alerts.ops.findings import Finding, Level, Probes
from channels.email import dkim_from_settings


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: a relay or URL on this machine only."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def smtp(settings: Settings, probes: Probes) -> Finding:
    """EHLO, STARTTLS (when configured) and AUTH (when a username is set); QUIT, no MAIL."""
    o = settings.email
    where = f"{o.host}:{o.port}"
    client = aiosmtplib.SMTP(
        hostname=o.host,
        port=o.port,
        timeout=probes.timeout,
        use_tls=o.security == "tls",
        start_tls=False,
        tls_context=probes.tls,
        local_hostname="localhost",
    )
    steps: list[str] = []
    try:
        await client.connect()
        await client.ehlo()
        steps.append("EHLO ok")
        offers_starttls = client.supports_extension("starttls")
        if o.security == "starttls":
            if not offers_starttls:
                return _smtp_fail(
                    where,
                    steps,
                    "the relay does not offer STARTTLS",
                    'use the relay\'s submission port (587) or set [email] security = "tls" (465)',
                )
            await client.starttls()
            await client.ehlo()
            steps.append("STARTTLS ok")
        if o.username:
            if not client.supports_extension("auth"):
                return _smtp_fail(
                    where,
                    steps,
                    "the relay offers no AUTH here",
                    "AUTH usually needs TLS first: set [email] security, or clear [email] username",
                )
            await client.login(o.username, o.password)
            steps.append("AUTH ok")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return _smtp_fail(
            where,
            steps,
            f"AUTH refused ({exc.code})",
            "check [email] username and the password in ALERTS_EMAIL_PASSWORD",
        )
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return _smtp_fail(
            where,
            steps,
            f"TLS failed: {exc}",
            "the relay's certificate must be valid for [email] host; check host and port",
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        return _smtp_fail(
            where,
            steps,
            str(exc) or type(exc).__name__,
            "check [email] host, port and security, and that the relay accepts this machine",
        )
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    detail = f"{where}: {', '.join(steps)} (no mail sent)"
    if o.security == "none" and offers_starttls:
        return Finding(
            check="smtp",
            level=Level.WARN,
            detail=detail,
            fix='the relay offers STARTTLS: set [email] security = "starttls"',
        )
    if o.security == "none" and not is_loopback(o.host):
        return Finding(
            check="smtp",
            level=Level.WARN,
            detail=detail,
            fix="mail and the relay password cross the network in clear: use starttls or tls",
        )
    return Finding(check="smtp", level=Level.OK, detail=detail)


def _smtp_fail(where: str, steps: list[str], reason: str, fix: str) -> Finding:
    done = f"{', '.join(steps)}, then " if steps else ""
    return Finding(check="smtp", level=Level.FAIL, detail=f"{where}: {done}{reason}", fix=fix)


async def telegram(settings: Settings, probes: Probes) -> Finding:
    """``getMe`` with the token: the bot exists and the token is its own."""
    o = settings.telegram
    if not o.token:
        return Finding(check="telegram", level=Level.OK, detail="not configured (no [telegram] token)")
    host = urlsplit(o.base_url).netloc
    timeout = aiohttp.ClientTimeout(total=probes.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{o.base_url}{o.token}/getMe", ssl=probes.tls or True) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Finding(
            check="telegram",
            level=Level.FAIL,
            detail=f"cannot reach {host}: {str(exc) or type(exc).__name__}",
            fix="check [telegram] base_url and that this machine may reach it (proxy, firewall)",
        )
    if status in (401, 404):
        return Finding(
            check="telegram",
            level=Level.FAIL,
            detail=f"{host} refused the token ({status})",
            fix="copy the bot's token again from @BotFather (/mybots → API Token) into ALERTS_TELEGRAM_TOKEN",
        )
    bot = body.get("result") if isinstance(body, dict) else None
    if status != 200 or not isinstance(bot, dict):
        return Finding(
            check="telegram",
            level=Level.FAIL,
            detail=f"{host} answered getMe with {status}",
            fix="check [telegram] base_url; try again later if Telegram is down",
        )
    return Finding(
        check="telegram", level=Level.OK, detail=f"@{bot.get('username')} (bot id {bot.get('id')})"
    )


async def dkim_record(settings: Settings, probes: Probes) -> Finding:
    """The public key published at ``<selector>._domainkey.<domain>`` matches our private key."""
    try:
        options = dkim_from_settings(settings.email)
    except ConfigError as exc:
        return Finding(
            check="dkim",
            level=Level.FAIL,
            detail=exc.message,
            fix="set [email] dkim_selector, dkim_domain and dkim_key_file together, to a readable PEM key",
        )
    if options is None:
        return Finding(
            check="dkim",
            level=Level.WARN,
            detail="alerts does not sign mail ([email] dkim_selector, dkim_domain, dkim_key_file unset)",
            fix="Gmail and Yahoo ask bulk senders for DKIM and honour one-click unsubscribe only on signed "
            "mail: set the three keys and publish the record this check then prints (unless the relay signs)",
        )
    try:
        key = dkim.crypto.parse_pem_private_key(options.private_key)
    except dkim.crypto.UnparsableKeyError:
        return Finding(
            check="dkim",
            level=Level.FAIL,
            detail=f"{settings.email.dkim_key_file}: not a PEM RSA private key",
            fix="generate one: openssl genrsa -out dkim.pem 2048",
        )
    name = f"{options.selector}._domainkey.{options.domain}"
    expected = public_key_record(key["modulus"], key["publicExponent"])
    publish = f'publish TXT {name} "{expected}"'
    resolver = probes.resolver or dns.asyncresolver.Resolver()
    try:
        answer = await resolver.resolve(name, "TXT", lifetime=probes.timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Finding(check="dkim", level=Level.FAIL, detail=f"no TXT record at {name}", fix=publish)
    except dns.exception.DNSException as exc:
        return Finding(
            check="dkim",
            level=Level.WARN,
            detail=f"could not ask DNS for {name}: {exc}",
            fix="check this machine's resolver; the record could not be compared",
        )
    records = [b"".join(rdata.strings).decode("ascii", "replace") for rdata in answer]
    tags = next((t for t in map(record_tags, records) if "p" in t), None)
    if tags is None:
        return Finding(
            check="dkim", level=Level.FAIL, detail=f"{name} has no DKIM key (no p= tag)", fix=publish
        )
    if not tags["p"]:
        return Finding(
            check="dkim", level=Level.FAIL, detail=f"{name}: the key is revoked (empty p=)", fix=publish
        )
    try:
        published = dkim.crypto.parse_public_key(base64.b64decode(tags["p"]))
    except (ValueError, dkim.crypto.UnparsableKeyError):
        return Finding(
            check="dkim", level=Level.FAIL, detail=f"{name}: p= is not an RSA public key", fix=publish
        )
    if (published["modulus"], published["publicExponent"]) != (key["modulus"], key["publicExponent"]):
        return Finding(
            check="dkim",
            level=Level.FAIL,
            detail=f"{name} holds another key than {settings.email.dkim_key_file}",
            fix=publish,
        )
    return Finding(check="dkim", level=Level.OK, detail=f"{name} matches {settings.email.dkim_key_file}")


def record_tags(record: str) -> dict[str, str]:
    """``v=DKIM1; k=rsa; p=…`` as a dict (whitespace inside values removed, as RFC 6376 says)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip()] = "".join(value.split())
    return tags


def public_key_record(modulus: int, exponent: int) -> str:
    """The DKIM TXT record for an RSA public key (SubjectPublicKeyInfo, base64)."""
    rsa_key = _der(0x30, _der_int(modulus) + _der_int(exponent))
    algorithm = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + _der(0x05, b""))  # rsaEncryption
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + rsa_key))
    return f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8)
    )
    return bytes([tag]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


async def public_url(settings: Settings, probes: Probes) -> Finding:
    """https (links in alerts carry tokens), and ``/healthz`` answers there."""
    url = settings.server.public_url.rstrip("/")
    parts = urlsplit(url)
    level, fix = Level.OK, ""
    if parts.scheme != "https":
        if is_loopback(parts.hostname or ""):
            level, fix = (
                Level.WARN,
                "fine for a trial on this machine; recipients need an https:// public_url",
            )
        else:
            level, fix = (
                Level.FAIL,
                "links in alerts carry unsubscribe tokens: serve https behind a proxy, set https://",
            )
    timeout = aiohttp.ClientTimeout(total=probes.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}/healthz", ssl=probes.tls or True, allow_redirects=False) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Finding(
            check="public_url",
            level=Level.FAIL,
            detail=f"{url}: not reachable: {str(exc) or type(exc).__name__}",
            fix=_also(fix, "start `alerts serve`; check DNS, the proxy and [server] public_url"),
        )
    if status != 200:
        return Finding(
            check="public_url",
            level=Level.FAIL,
            detail=f"{url}/healthz answered {status}",
            fix=_also(fix, "the proxy must forward to `alerts serve`; is the service healthy?"),
        )
    return Finding(check="public_url", level=level, detail=f"{url}: /healthz answers", fix=fix)


def _also(first: str, then: str) -> str:
    return f"{first}; {then}" if first else then
