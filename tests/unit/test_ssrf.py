"""Which webhook URLs may be called: public addresses only, unless an operator allows a network."""

from __future__ import annotations

import pytest

from video2mp3.ssrf import Refused, UrlGuard, parse_networks


def resolving(*addresses: str) -> UrlGuard:
    return UrlGuard(resolver=lambda host, port: list(addresses))


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (("127.0.0.1",), "loopback"),
        (("::1",), "loopback"),
        (("169.254.169.254",), "link-local (cloud metadata)"),
        (("fe80::1%eth0",), "link-local"),
        (("10.1.2.3",), "private"),
        (("172.16.0.9",), "private"),
        (("192.168.1.1",), "private"),
        (("fd00:ec2::254",), "private"),  # the AWS metadata service over IPv6
        (("100.100.100.200",), "not public"),  # shared address space (Alibaba's metadata)
        (("0.0.0.0",), "private or reserved"),  # noqa: S104 - an address, not a bind
        (("::ffff:127.0.0.1",), "127.0.0.1, a loopback"),
        (("93.184.215.14", "10.0.0.1"), "10.0.0.1"),  # every address counts, not the first
    ],
)
def test_names_resolving_to_non_public_addresses_are_refused(
    addresses: tuple[str, ...], why: str
) -> None:
    with pytest.raises(Refused) as refused:
        resolving(*addresses).check("https://hooks.example/in")
    assert refused.value.code == "webhook_url_refused"
    assert why in refused.value.message


def test_public_addresses_pass_with_their_port() -> None:
    destination = resolving("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c").check(
        "https://hooks.example:8443/in?x=1"
    )
    assert (destination.host, destination.port, destination.scheme) == (
        "hooks.example",
        8443,
        "https",
    )
    assert destination.addresses[0] == "93.184.215.14"
    assert resolving("93.184.215.14").check("http://hooks.example/").port == 80


def test_an_operator_can_allow_networks() -> None:
    guard = UrlGuard(parse_networks("127.0.0.0/8, 10.0.0.0/8"), resolver=lambda h, p: ["10.9.9.9"])
    assert guard.check("http://internal.example/").addresses == ("10.9.9.9",)
    with pytest.raises(Refused):
        UrlGuard(parse_networks("127.0.0.0/8"), resolver=lambda h, p: ["10.9.9.9"]).check(
            "http://internal.example/"
        )
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8' is not a network"):
        parse_networks("10.0.0.300/8")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://x/", "http:// or https://"),
        ("http:///path", "no host"),
        ("http://u:p@hooks.example/", "no credentials"),
        ("http://hooks.example:99999/", "port"),
    ],
)
def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        resolving("93.184.215.14").check(url)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(Refused, match="does not resolve"):
        UrlGuard(resolver=fail).check("https://nowhere.invalid/")
