"""Which IP addresses the server may connect to on a client's behalf.

Only globally routable unicast addresses are allowed. The tables below are written out rather
than taken from :attr:`ipaddress.IPv4Address.is_global`, because what that property covers has
changed between Python patch releases (multicast, for one, counts as "global" in 3.11). Pure
functions: nothing here opens a socket or resolves a name.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = ["IPAddress", "is_forbidden"]

IPAddress = IPv4Address | IPv6Address

_IPV4_FORBIDDEN = tuple(
    IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network", including the unspecified 0.0.0.0
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, home of cloud metadata services
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including the broadcast 255.255.255.255
    )
)

# Inside 2000::/3 (the only global unicast space) these are still not globally routable.
_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV6_FORBIDDEN = tuple(
    IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments, including Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")


def is_forbidden(ip: IPv4Address | IPv6Address) -> bool:
    """True unless ``ip`` is a globally routable unicast address.

    An IPv6 address that carries an IPv4 address (mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``
    or NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it reaches. The deprecated
    IPv4-compatible form ``::a.b.c.d`` is always forbidden: it is not routable at all.
    """
    if isinstance(ip, IPv4Address):
        return any(ip in block for block in _IPV4_FORBIDDEN)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_forbidden(embedded)
    if ip not in _IPV6_GLOBAL_UNICAST:
        return True
    return any(ip in block for block in _IPV6_FORBIDDEN)


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
