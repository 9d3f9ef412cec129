"""Which webhook URLs may be called: public addresses only, unless an operator allows a network."""

from __future__ import annotations

import pytest

from video2mp3.domain.webhooks import MAX_URL
from video2mp3.ssrf import InvalidUrl, Refused, UrlGuard, parse_networks, parse_url


def resolving(*addresses: str) -> UrlGuard:
    return UrlGuard(resolver=lambda host, port: list(addresses))


NOT_PUBLIC = "hooks.example resolves to an address that is not public; only public addresses"


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("::1",),
        ("169.254.169.254",),
        ("fe80::1%eth0",),
        ("10.1.2.3",),
        ("172.16.0.9",),
        ("192.168.1.1",),
        ("fd00:ec2::254",),  # the AWS metadata service over IPv6
        ("100.100.100.200",),  # shared address space (Alibaba's metadata)
        ("0.0.0.0",),  # noqa: S104 - an address, not a bind
        ("::ffff:127.0.0.1",),
        ("93.184.215.14", "10.0.0.1"),  # every address counts, not the first
        ("2002:7f00:1::",),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1",),  # 6to4 of the metadata address
        ("64:ff9b::a9fe:a9fe",),  # NAT64 of the metadata address
        ("64:ff9b:1::5db8:d70e",),  # a network's own NAT64
        ("::127.0.0.1",),  # IPv4-compatible
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2",),  # Teredo
    ],
)
def test_names_resolving_to_non_public_addresses_are_refused_without_naming_them(
    addresses: tuple[str, ...],
) -> None:
    with pytest.raises(Refused) as refused:
        resolving(*addresses).check("https://hooks.example/in")
    assert refused.value.code == "webhook_url_refused"
    assert refused.value.message.startswith(NOT_PUBLIC)
    for address in (*addresses, "127.0.0.1", "169.254", "10.0.0.1", "loopback", "private"):
        assert address not in refused.value.message  # the internal DNS is no oracle


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/", "169.254.169.254 is a link-local (cloud metadata) address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "stands for 127.0.0.1, a loopback address"),
        ("http://[::127.0.0.1]/", "stands for 127.0.0.1, a loopback address"),
        ("http://[2002:7f00:1::]/", "2002:7f00:1:: stands for 127.0.0.1, a loopback address"),
        ("http://[2002:a9fe:a9fe::1]/", "stands for 169.254.169.254, a link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/", "stands for 169.254.169.254, a link-local"),
        ("http://[64:ff9b::a00:1]:8080/", "stands for 10.0.0.1, a private or reserved"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "a private or reserved address"),
    ],
)
def test_addresses_in_the_url_are_judged_as_the_ipv4_address_they_carry(url: str, why: str) -> None:
    guard = UrlGuard(resolver=lambda host, port: [host])  # as getaddrinfo answers for an address
    with pytest.raises(Refused) as refused:
        guard.check(url)
    assert why in refused.value.message


def test_embedded_public_addresses_pass_and_allowed_networks_apply_to_them() -> None:
    for address in ("2002:5db8:d70e::1", "64:ff9b::5db8:d70e", "::ffff:93.184.215.14"):
        assert resolving(address).check("http://hooks.example/").addresses == (address,)
    allowed = UrlGuard(parse_networks("127.0.0.0/8"), resolver=lambda h, p: ["2002:7f00:1::"])
    assert allowed.check("http://hooks.example/").addresses == ("2002:7f00:1::",)
    with pytest.raises(InvalidUrl, match="port must be a number from 1 to 65535"):
        resolving("93.184.215.14").check("http://[2002:5db8:d70e::1]:0/")


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
        ("javascript:alert(1)", "http:// or https://"),
        ("hooks.example/in", "http:// or https://"),
        ("http:///path", "no host"),
        ("http://u:p@hooks.example/", "no credentials"),
        ("http://evil\\@hooks.example/", "no credentials"),
        ("http://hooks.example:99999/", "port must be a number from 1 to 65535"),
        ("http://hooks.example:65536/", "port must be a number from 1 to 65535"),
        ("http://hooks.example:0/", "port must be a number from 1 to 65535"),
        ("http://hooks.example:+80/", "port must be a number from 1 to 65535"),
        ("http://hooks.example:/in", "port must be a number from 1 to 65535"),
        ("http://hooks.example:8o/", "port must be a number from 1 to 65535"),
        ("http://93.184.216.34/\r\nX: y", "a carriage return (U+000D) at character 22"),
        ("http://hooks.example/a\nb", "a line break (U+000A) at character 23"),
        ("http://hooks.example/a\tb", "a tab (U+0009) at character 23"),
        ("http://hooks.example/a b", "a space (U+0020) at character 23"),
        (" http://hooks.example/", "a space (U+0020) at character 1"),
        ("http://hooks.example/\n", "a line break (U+000A) at character 22"),
        ("http://hooks.example/\x00", "a control character (U+0000)"),
        ("http://hooks.example/\x7f", "a control character (U+007F)"),
        ("http://hooks.example/\x85", "a control character (U+0085)"),
        ("http://hooks.example/\u00a0", "a space (U+00A0)"),
        ("http://hooks.example/\u2028", "a line break (U+2028)"),
        ("http://hooks.example/\u202e", "an invisible character (U+202E)"),
        ("http://xn--zz.example/", "not a valid host name"),
        ("http://[::1/", "cannot be read"),
        ("http://" + "a" * MAX_URL + ".example/", f"at most {MAX_URL}"),
        ("", "an http(s) URL"),
        (None, "an http(s) URL"),
        (["http://hooks.example/"], "an http(s) URL"),
    ],
)
def test_urls_that_cannot_be_delivered_to_are_invalid(url: object, why: str) -> None:
    with pytest.raises(InvalidUrl) as invalid:
        resolving("93.184.215.14").check(url)
    assert invalid.value.code == "invalid_request"  # not a refusal: no address is involved
    assert not isinstance(invalid.value, Refused)
    assert why in invalid.value.message


def test_what_is_checked_is_what_a_delivery_sends_to() -> None:
    """One parse decides and delivers: the destination carries the URL the request is made to,
    with the name in the form that is resolved, connected to and sent as the TLS server name."""
    seen: list[tuple[str, int]] = []
    guard = UrlGuard(resolver=lambda host, port: seen.append((host, port)) or ["93.184.215.14"])
    destination = guard.check("https://bü.example:8443/in/é?x=1#top")
    assert seen == [("xn--b-eha.example", 8443)]
    assert destination.host == "xn--b-eha.example"
    assert destination.text == "https://bü.example:8443/in/é?x=1#top"  # as registered
    assert destination.url == parse_url(destination.text)
    assert destination.url.raw_path == b"/in/%C3%A9?x=1"
    longest = "https://hooks.example/" + "a" * (MAX_URL - len("https://hooks.example/"))
    assert resolving("93.184.215.14").check(longest).text == longest


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(Refused, match="does not resolve"):
        UrlGuard(resolver=fail).check("https://nowhere.invalid/")
