"""Which URLs the service may call on a user's behalf (webhooks): public addresses only.

A user-given URL could aim the notifier at the cloud's metadata service, at the broker's or the
database's port, or at anything else on the private network (server-side request forgery). So a
URL must be http(s), its name is resolved and every address it resolves to must be public,
unless an operator allows a network (``VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS``, e.g.
``127.0.0.0/8`` for local testing). The check runs at registration and again before each
delivery, and the delivery connects to an address this check returned, so a name that changes
its answers meanwhile (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from video2mp3.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class Refused(InvalidRequest):
    """A webhook URL the service will not call; the message says why."""

    code = "webhook_url_refused"


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

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _kind(ip: Address) -> str | None:
    """What makes ``ip`` off limits, or ``None`` for a public address."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private or ip.is_reserved or ip.is_unspecified or ip.is_multicast:
        return "private or reserved"
    if not ip.is_global:
        return "not public"
    return None


class UrlGuard:
    """Checks webhook URLs; ``allowed`` networks pass even when they are not public."""

    def __init__(self, allowed: Sequence[Network] = (), resolver: Resolver = resolve) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver

    def check(self, url: str) -> Destination:
        """The destination of ``url``, or ``Refused`` saying why it may not be called."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise Refused("the URL must start with http:// or https://")
        if not parts.hostname:
            raise Refused("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise Refused("put no credentials in the URL; check the signature instead")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Refused("the URL's port is not a number from 1 to 65535") from None
        try:
            found = self.resolver(parts.hostname, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{parts.hostname} does not resolve ({exc})") from None
        if not found:
            raise Refused(f"{parts.hostname} does not resolve")
        for text in found:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            kind = _kind(ip)
            if kind and not any(ip in network for network in self.allowed):
                raise Refused(
                    f"{parts.hostname} resolves to {ip}, a {kind} address; only public"
                    " addresses are called (an operator may allow networks with"
                    " VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS)"
                )
        return Destination(url.strip(), parts.scheme, parts.hostname, port, tuple(found))
