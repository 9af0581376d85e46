"""The address classifier, as pure unit tests: no address here is ever connected to."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from hyperlocal.inputs import is_forbidden

FORBIDDEN = [
    # loopback and unspecified
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    # private and CGNAT
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.255",
    # link-local (cloud metadata lives at 169.254.169.254)
    "169.254.169.254",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    # unique-local
    "fc00::1",
    "fd12:3456:789a::1",
    # multicast
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    # reserved and broadcast
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "198.18.0.1",
    "100::1",
    "4000::1",
    # documentation
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "2001:db8::1",
    "3fff::1",
    # IPv6 carrying a forbidden IPv4 address
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "::10.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    # IETF protocol assignments, Teredo included
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "172.32.0.1",  # just past 172.16/12
    "100.128.0.1",  # just past 100.64/10
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden(address: str) -> None:
    assert is_forbidden(ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed(address: str) -> None:
    assert not is_forbidden(ip_address(address))


def test_ipv4_compatible_form_is_forbidden_even_for_a_public_address() -> None:
    # ::a.b.c.d is deprecated and unroutable, whatever it embeds.
    assert is_forbidden(ip_address("::8.8.8.8"))
