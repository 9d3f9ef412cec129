"""Which URLs the service may call on a user's behalf (webhooks): public addresses only.

``parse_url`` decides whether a text is a URL a webhook can be delivered to at all, and returns
the very value a delivery sends to: registration and delivery call it both, so nothing can be
registered that fails to parse when it is sent to (``InvalidUrl``, a 422 ``invalid_request``).
It is strict: no control, line, format or space character anywhere (``%20`` for a space), http
or https only, a host and no credentials, a port from 1 to 65535, at most ``MAX_URL`` characters.

A user-given URL could aim the notifier at the cloud's metadata service, at the broker's or the
database's port, or at anything else on the private network (server-side request forgery). So a
URL must be http(s), its name is resolved and every address it resolves to must be public,
unless an operator allows a network (``VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS``, e.g.
``127.0.0.0/8`` for local testing). The check runs at registration and again before each
delivery, and the delivery connects to an address this check returned, so a name that changes
its answers meanwhile (DNS rebinding) cannot slip through. An IPv6 address carrying an IPv4
address (mapped, compatible, 6to4, NAT64) is judged as that IPv4 address. A refusal never names
the address a name resolved to: it would answer anyone's questions about the internal DNS.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from video2mp3.domain.webhooks import MAX_URL
from video2mp3.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class InvalidUrl(InvalidRequest):
    """Not a URL a webhook can be delivered to, wherever it points; the message says why."""


class Refused(InvalidRequest):
    """A webhook URL the service will not call; the message says why."""

    code = "webhook_url_refused"


_CHARACTERS = {"\t": "a tab", "\n": "a line break", "\r": "a carriage return"}
_KINDS = {
    "Zs": "a space",
    "Zl": "a line break",
    "Zp": "a line break",
    "Cc": "a control character",
    "Cf": "an invisible character",
}
_AUTHORITY = re.compile(r"[^:]*://([^/?#]*)")


def parse_url(text: object) -> httpx.URL:
    """``text`` as the URL a webhook delivery sends to; ``InvalidUrl`` naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidUrl("url must be an http(s) URL, as text")
    if len(text) > MAX_URL:
        raise InvalidUrl(f"the URL is {len(text)} characters long; at most {MAX_URL} are allowed")
    for position, char in enumerate(text, 1):
        kind = unicodedata.category(char)
        if kind[0] in "CZ":
            name = _CHARACTERS.get(char) or _KINDS.get(kind, "a character that cannot be shown")
            hint = " (in a path or query, write a space as %20)" if kind == "Zs" else ""
            raise InvalidUrl(
                f"the URL contains {name} (U+{ord(char):04X}) at character {position}:"
                f" remove it{hint}"
            )
    if not text.lower().startswith(("http://", "https://")):
        raise InvalidUrl("the URL must start with http:// or https://")
    authority = _AUTHORITY.match(text)
    host_port = authority.group(1).rpartition("@")[2] if authority else ""
    colon, port = host_port.rpartition("]")[2].rpartition(":")[1:]
    if colon and not (re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536):
        raise InvalidUrl("the URL's port must be a number from 1 to 65535")
    try:
        url = httpx.URL(text)
        # Both forms of the name, as a delivery uses them: these fail for a name that IDNA
        # cannot encode or decode.
        host, _ = url.host, url.raw_host.decode("ascii")
    except UnicodeError as exc:
        raise InvalidUrl(f"the URL's host is not a valid host name ({exc})") from None
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidUrl(f"the URL cannot be read: {exc}") from None
    if not host:
        raise InvalidUrl("the URL has no host")
    if url.userinfo:
        raise InvalidUrl("put no credentials in the URL; check the signature instead")
    return url


def parse_networks(text: str) -> tuple[Network, ...]:
    """Networks from comma-separated CIDRs; ``ValueError`` naming a bad one."""
    networks = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a network in CIDR notation") from None
    return tuple(networks)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system's resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Destination:
    """A checked URL and the addresses that may be connected to for it."""

    text: str  # as registered
    url: httpx.URL  # as sent to
    host: str  # as resolved, connected to and named to TLS (IDNA: ASCII)
    port: int
    addresses: tuple[str, ...]

    @property
    def scheme(self) -> str:
        return self.url.scheme


def _kind(ip: Address) -> str | None:
    """What makes ``ip`` off limits, or ``None`` for a public address."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private or ip.is_reserved or ip.is_unspecified or ip.is_multicast:
        return "private or reserved"
    if not ip.is_global or ip in _NAT64_LOCAL:
        return "not public"
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # a network's own translator (RFC 8215)
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d, deprecated but still routed by some


def _judged(ip: Address) -> tuple[Address, ...]:
    """The addresses ``ip`` is judged as: an IPv6 address that carries an IPv4 address (mapped,
    compatible, 6to4, NAT64) reaches that IPv4 address, so it is judged as that address alone
    (``2002:7f00:1::`` is 127.0.0.1); a Teredo address as itself and its client's IPv4 address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return (ip,)
    carried = ip.ipv4_mapped or ip.sixtofour
    if carried is None and (ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1)):
        carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if carried is not None:
        return (carried,)
    return (ip, ip.teredo[1]) if ip.teredo else (ip,)


def _literal(host: str) -> Address | None:
    """The address a URL's host is written as, or ``None`` for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class UrlGuard:
    """Checks webhook URLs; ``allowed`` networks pass even when they are not public."""

    def __init__(self, allowed: Sequence[Network] = (), resolver: Resolver = resolve) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver

    def check(self, text: object) -> Destination:
        """The destination of a URL; ``InvalidUrl`` if it is not one a webhook can be delivered
        to, ``Refused`` if it may not be called: either says why."""
        url = parse_url(text)
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            found = self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{host} does not resolve ({exc})") from None
        if not found:
            raise Refused(f"{host} does not resolve")
        literal = _literal(host)
        for address in found:
            for ip in _judged(ipaddress.ip_address(address.split("%", 1)[0])):
                kind = _kind(ip)
                if not kind or any(ip in network for network in self.allowed):
                    continue
                # The URL's own address may be named; what a name resolves to may not, or
                # the check would tell anyone the answers of the service's internal DNS.
                if literal is None:
                    why = f"{host} resolves to an address that is not public"
                elif ip == literal:
                    why = f"{host} is a {kind} address"
                else:
                    why = f"{host} stands for {ip}, a {kind} address"
                raise Refused(
                    f"{why}; only public addresses are called (an operator may allow"
                    " networks with VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS)"
                )
        return Destination(str(text), url, host, port, tuple(found))
