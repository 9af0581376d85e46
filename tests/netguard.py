"""The test process may talk to loopback only: no DNS query (the resolver is not on
loopback) and no connection to any other address, even if a guard under test is broken."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class OffLoopbackError(OSError):
    pass


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or str(name).lower() in _LOCAL_NAMES:
            return real(host, *args, **kwargs)
        flags = kwargs.pop("flags", args[3] if len(args) > 3 else 0)
        rest = args[:3]
        try:  # numeric spellings (127.1, 0x7f000001, ...) resolve without any query
            return real(host, *rest, flags=flags | socket.AI_NUMERICHOST, **kwargs)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no names: {host!r}") from None

    return getaddrinfo


def _guard_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OffLoopbackError(f"tests connect to loopback only, not {address[0]}")
        return real(sock, address)

    return connect


@contextmanager
def loopback_only() -> Iterator[None]:
    saved = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex
    socket.getaddrinfo = _guard_getaddrinfo(saved[0])  # type: ignore[assignment]
    socket.socket.connect = _guard_connect(saved[1])  # type: ignore[method-assign]
    socket.socket.connect_ex = _guard_connect(saved[2])  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = saved  # type: ignore[method-assign]
