"""An httpx transport that refuses to connect to forbidden addresses.

The check lives in the network backend, at connect time: the backend resolves the host itself,
vets every address it got, and then connects to one of those vetted addresses. Checking the
name first and letting the HTTP library resolve it again later would leave a window for DNS
rebinding (a name that answers "public" to the check and "127.0.0.1" to the connect). TLS is
unaffected: httpcore passes the URL's hostname to ``start_tls`` for SNI and certificate checks.

Anyone sending requests to client-chosen URLs (input fetching, webhook delivery) should use
:class:`GuardedTransport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from hyperlocal.inputs.addresses import IPAddress, is_forbidden

__all__ = [
    "AddressGuardError",
    "AddressPolicy",
    "ForbiddenAddressError",
    "GuardedBackend",
    "GuardedTransport",
    "UnresolvableHostError",
    "resolve",
]

SocketOptions = Iterable[
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
]


class AddressGuardError(Exception):
    """A connection was refused before it was made. Carries the host name only."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


class ForbiddenAddressError(AddressGuardError):
    """The host resolved to at least one address that :func:`is_forbidden` refuses."""


class UnresolvableHostError(AddressGuardError):
    """The host name did not resolve to any IP address."""


_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` to its distinct addresses, in resolver order.

    Literal addresses in any spelling the C library accepts (``127.1``, ``0x7f000001``,
    ``2130706433``) come back normalised, which is why callers vet the result and not the name.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHostError(host) from exc
    found = [ip_address(info[4][0]) for info in infos if info[0] in _INET_FAMILIES]
    if not found:
        raise UnresolvableHostError(host)
    return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which hosts may be connected to.

    ``allow_private`` turns the address check off (development and tests). ``allowed_hosts``
    is an operator's allow-list of host names, as written in URLs, that skip the address
    check: for example internal object storage. A name matches only as spelled (case aside),
    so allowing ``127.0.0.1`` does not allow ``localhost`` or ``127.1``.
    """

    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Spelled as httpcore hands hosts to the backend: lower case, IPv6 without brackets.
        canonical = frozenset(host.lower().strip("[]") for host in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", canonical)

    async def vet(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and return its addresses, or raise :class:`AddressGuardError`."""
        addresses = await resolve(host, port)
        if self._trusts(host):
            return addresses
        if any(is_forbidden(ip) for ip in addresses):
            raise ForbiddenAddressError(host)
        return addresses

    def _trusts(self, host: str) -> bool:
        return self.allow_private or host.lower() in self.allowed_hosts


class GuardedBackend(AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses its policy vetted."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> AsyncNetworkStream:
        addresses = await self._policy.vet(host, port)
        # Try each vetted address in turn, as a resolver-driven connect would.
        for ip in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
        return await self._inner.connect_tcp(
            str(addresses[-1]), port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection, redirects included, passes ``policy``.

    It ignores proxy environment variables: a proxy would make the connect-time check vet the
    proxy instead of the destination. Build the client with ``trust_env=False`` too, so that
    httpx does not mount proxy transports in front of this one.
    """

    def __init__(self, policy: AddressPolicy, *, max_connections: int = 100) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx offers no way to hand its pool a network backend, so replace the pool. Safe for
        # the pinned httpx (<0.29); the discarded pool had opened nothing yet. Its size must
        # be set: httpcore's default of 10 would let two slow receivers starve the rest.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=GuardedBackend(policy),
            max_connections=max_connections,
        )
