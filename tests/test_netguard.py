"""The loopback-only guard itself: refuses without sending anything."""

from __future__ import annotations

import socket

import pytest

from tests.netguard import OffLoopbackError


def test_names_are_not_resolved() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 80)


def test_numeric_and_local_names_resolve() -> None:
    assert socket.getaddrinfo("127.1", 80)[0][4][0] == "127.0.0.1"
    assert socket.getaddrinfo("localhost", 80)


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "169.254.169.254"])
def test_connections_off_loopback_are_refused_before_any_packet(address: str) -> None:
    with socket.socket() as sock, pytest.raises(OffLoopbackError):
        sock.connect((address, 9))
