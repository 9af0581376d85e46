"""MediaFetcher against real servers on 127.0.0.1. No test connects anywhere else.

Refusals are checked against a live loopback listener that counts connections, so "refused"
means "refused before connecting", not "connected and then failed". Name resolution is faked
(see ``fake_dns``): a name outside its table fails unless it is a numeric literal.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest

from hyperlocal.engines.base import MediaKind
from hyperlocal.errors import MediaInputError
from hyperlocal.inputs import AddressPolicy, ForbiddenAddressError, GuardedTransport
from tests.inputs.conftest import FakeDNS, FetcherFactory, LocalServer, Reply, pcm_wav

pytestmark = pytest.mark.usefixtures("fake_dns")

IMAGE = MediaKind.IMAGE
AUDIO = MediaKind.AUDIO
FORBIDDEN = "image: URL resolves to a private or loopback address"
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
    "LOCALHOST",
]


async def refusal(fetcher: Any, source: str, kind: MediaKind = IMAGE) -> str:
    with pytest.raises(MediaInputError) as caught:
        await fetcher.fetch(kind.value, source, kind)
    return str(caught.value.message)


# --- the address guard ------------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_in_every_spelling_is_refused_before_connecting(
    make_fetcher: FetcherFactory, listener: LocalServer, host: str
) -> None:
    fetcher = make_fetcher(allow_private=False)
    assert await refusal(fetcher, listener.url("/x.png", host=host)) == FORBIDDEN
    assert listener.connections == 0


async def test_the_listener_does_count_connections(
    make_fetcher: FetcherFactory, listener: LocalServer
) -> None:
    # The control for the test above: with the guard off, the same URL reaches the listener.
    fetcher = make_fetcher(allow_private=True)
    assert await refusal(fetcher, listener.url("/x.png")) == "image: could not fetch URL (HTTP 404)"
    assert listener.connections == 1


@pytest.mark.parametrize("host", ["0177.0.0.1", "[::1", "127.0.0.256"])
async def test_malformed_hosts_are_refused(
    make_fetcher: FetcherFactory, listener: LocalServer, host: str
) -> None:
    fetcher = make_fetcher(allow_private=True)
    assert await refusal(fetcher, listener.url("/x.png", host=host)) == "image: not a valid URL"
    assert listener.connections == 0


@pytest.mark.parametrize("url", ["http:///x.png", "https://", "http://:80/x.png"])
async def test_urls_without_a_host_are_refused(make_fetcher: FetcherFactory, url: str) -> None:
    assert await refusal(make_fetcher(allow_private=True), url) == "image: not a valid URL"


async def test_guarded_transport_protects_any_httpx_client(listener: LocalServer) -> None:
    transport = GuardedTransport(AddressPolicy(allow_private=False))
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        with pytest.raises(ForbiddenAddressError):
            await client.get(listener.url("/hook", host="localhost"))
    assert listener.connections == 0


async def test_connects_to_the_address_it_vetted_and_keeps_the_host_name(
    make_fetcher: FetcherFactory, server: LocalServer, png: bytes, fake_dns: FakeDNS
) -> None:
    # The name is resolved once per connection, and the connection goes to that answer (no
    # second lookup a rebinding DNS server could answer differently), while the request still
    # names the original host.
    fake_dns.answers["media.example"] = ("127.0.0.1",)
    server.routes["/a.png"] = Reply(body=png)
    url = server.url("/a.png", host="media.example")
    assert await refusal(make_fetcher(), url) == FORBIDDEN
    fetcher = make_fetcher(allowed_hosts=frozenset({"Media.Example"}))
    assert (await fetcher.fetch("image", url, IMAGE)).data == png
    assert fake_dns.lookups == ["media.example", "media.example"]
    assert server.requests == [("/a.png", f"media.example:{server.port}")]


async def test_one_forbidden_answer_among_several_is_enough(
    make_fetcher: FetcherFactory, listener: LocalServer, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["mixed.example"] = ("::1", "127.0.0.1")
    assert await refusal(make_fetcher(), listener.url(host="mixed.example")) == FORBIDDEN
    assert listener.connections == 0


async def test_tries_each_vetted_address_in_turn(
    make_fetcher: FetcherFactory, server: LocalServer, png: bytes, fake_dns: FakeDNS
) -> None:
    # Nothing listens on [::1] at this port, so the first connect is refused.
    fake_dns.answers["media.example"] = ("::1", "127.0.0.1")
    server.routes["/a.png"] = Reply(body=png)
    fetcher = make_fetcher(allow_private=True)
    assert (
        await fetcher.fetch("image", server.url("/a.png", host="media.example"), IMAGE)
    ).data == png


async def test_connection_refused(make_fetcher: FetcherFactory) -> None:
    with socket.socket() as probe:  # a loopback port that nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = await refusal(make_fetcher(allow_private=True), f"http://127.0.0.1:{port}/x.png")
    assert message == "image: could not fetch URL (connection failed)"


async def test_unknown_host(make_fetcher: FetcherFactory) -> None:
    message = await refusal(make_fetcher(allow_private=True), "http://nowhere.example/x.png")
    assert message == "image: could not fetch URL (host not found)"


@pytest.mark.parametrize(
    "source",
    [
        "ftp://127.0.0.1/x.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "javascript:alert(1)",
        "//127.0.0.1/x.png",
        "x.png",
    ],
)
async def test_only_http_and_https_are_fetched(make_fetcher: FetcherFactory, source: str) -> None:
    message = await refusal(make_fetcher(allow_private=True), source)
    assert message == "image: URL must be http or https"


async def test_credentials_in_the_url_are_refused(
    make_fetcher: FetcherFactory, listener: LocalServer
) -> None:
    url = listener.url("/x.png", host="user:secret@127.0.0.1")
    message = await refusal(make_fetcher(allow_private=True), url)
    assert message == "image: URL must not contain credentials"
    assert listener.connections == 0


# --- fetching ---------------------------------------------------------------------------------


async def test_fetches_a_png(make_fetcher: FetcherFactory, server: LocalServer, png: bytes) -> None:
    server.routes["/cat.png"] = Reply(body=png, headers=(("Content-Type", "text/plain"),))
    url = server.url("/cat.png")
    media = await make_fetcher(allow_private=True).fetch("image", url, IMAGE)
    assert (media.field, media.kind, media.source) == ("image", IMAGE, url)
    assert (media.content_type, media.data) == ("image/png", png)  # sniffed, not as declared


async def test_operator_allowed_host_is_fetched_without_allow_private(
    make_fetcher: FetcherFactory, server: LocalServer, png: bytes
) -> None:
    server.routes["/cat.png"] = Reply(body=png, framing="chunked")
    fetcher = make_fetcher(allow_private=False, allowed_hosts=frozenset({"127.0.0.1"}))
    assert (await fetcher.fetch("image", server.url("/cat.png"), IMAGE)).data == png


def test_allowed_hosts_are_spelled_as_the_guard_sees_them() -> None:
    policy = AddressPolicy(allowed_hosts=frozenset({"[::1]", "Media.Example"}))
    assert policy.allowed_hosts == {"::1", "media.example"}


async def test_not_found(make_fetcher: FetcherFactory, server: LocalServer) -> None:
    message = await refusal(make_fetcher(allow_private=True), server.url("/missing.png"))
    assert message == "image: could not fetch URL (HTTP 404)"


async def test_bytes_that_are_not_the_claimed_media(
    make_fetcher: FetcherFactory, server: LocalServer, png: bytes
) -> None:
    server.routes["/song.wav"] = Reply(body=png)
    message = await refusal(make_fetcher(allow_private=True), server.url("/song.wav"), AUDIO)
    assert message == "audio: not a valid audio"


# --- redirects --------------------------------------------------------------------------------


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers=(("Location", location),))


async def test_follows_a_redirect_chain(
    make_fetcher: FetcherFactory, server: LocalServer, png: bytes
) -> None:
    server.routes |= {
        "/a": redirect("/b", 301),
        "/b": redirect(server.url("/c"), 307),
        "/c": redirect("d/e", 303),
        "/d/e": redirect("../final.png", 308),
        "/final.png": Reply(body=png),
    }
    fetcher = make_fetcher(allow_private=True, max_redirects=4)
    media = await fetcher.fetch("image", server.url("/a"), IMAGE)
    assert (media.data, media.source) == (png, server.url("/a"))
    assert [path for path, _ in server.requests] == ["/a", "/b", "/c", "/d/e", "/final.png"]


async def test_too_many_redirects(make_fetcher: FetcherFactory, server: LocalServer) -> None:
    server.routes["/loop"] = redirect("/loop")
    fetcher = make_fetcher(allow_private=True, max_redirects=3)
    assert await refusal(fetcher, server.url("/loop")) == (
        "image: could not fetch URL (too many redirects)"
    )
    assert len(server.requests) == 4


@pytest.mark.parametrize("host", ["localhost", "127.1", "[::1]", "0.0.0.0"])
async def test_redirect_to_loopback_is_refused(
    make_fetcher: FetcherFactory, server: LocalServer, listener: LocalServer, host: str
) -> None:
    # The first hop is allowed by the operator's allow-list; the hop it redirects to is not.
    server.routes["/hop"] = redirect(listener.url("/x.png", host=host))
    fetcher = make_fetcher(allow_private=False, allowed_hosts=frozenset({"127.0.0.1"}))
    assert await refusal(fetcher, server.url("/hop")) == FORBIDDEN
    assert server.connections == 1
    assert listener.connections == 0


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("file:///etc/passwd", "URL must be http or https"),
        ("http://user:pw@127.0.0.1/", "URL must not contain credentials"),
        ("http://[::1/", "could not fetch URL (invalid HTTP response)"),
    ],
)
async def test_redirect_to_a_bad_url_is_refused(
    make_fetcher: FetcherFactory, server: LocalServer, location: str, problem: str
) -> None:
    server.routes["/hop"] = redirect(location)
    fetcher = make_fetcher(allow_private=True)
    assert await refusal(fetcher, server.url("/hop")) == f"image: {problem}"


async def test_redirect_without_location_is_an_http_error(
    make_fetcher: FetcherFactory, server: LocalServer
) -> None:
    server.routes["/hop"] = Reply(status=302)
    message = await refusal(make_fetcher(allow_private=True), server.url("/hop"))
    assert message == "image: could not fetch URL (HTTP 302)"


# --- limits -----------------------------------------------------------------------------------


async def test_declared_length_over_the_cap_fails_without_reading_the_body(
    make_fetcher: FetcherFactory, server: LocalServer
) -> None:
    # The server sends headers and then nothing: reading the body would time out instead.
    server.routes["/big.png"] = Reply(
        headers=(("Content-Length", str(10**9)),), stall="after_headers"
    )
    fetcher = make_fetcher(allow_private=True, max_bytes=10_000, timeout=5.0)
    async with asyncio.timeout(2):
        assert await refusal(fetcher, server.url("/big.png")) == "image: larger than 10000 bytes"


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_undeclared_body_over_the_cap_is_cut_off(
    make_fetcher: FetcherFactory, server: LocalServer, framing: Any
) -> None:
    server.routes["/big.png"] = Reply(body=b"\x89PNG" * 50_000, framing=framing)
    fetcher = make_fetcher(allow_private=True, max_bytes=10_000)
    assert await refusal(fetcher, server.url("/big.png")) == "image: larger than 10000 bytes"


async def test_a_stalled_server_times_out(
    make_fetcher: FetcherFactory, server: LocalServer
) -> None:
    server.routes["/slow.png"] = Reply(stall="before_headers")
    fetcher = make_fetcher(allow_private=True, timeout=0.3)
    async with asyncio.timeout(2):
        message = await refusal(fetcher, server.url("/slow.png"))
    assert message == "image: could not fetch URL (timed out)"


async def test_a_slow_body_times_out(make_fetcher: FetcherFactory, server: LocalServer) -> None:
    # The timeout covers the whole fetch, not each read: a trickle does not keep it alive.
    server.routes["/slow.png"] = Reply(
        body=b"x", headers=(("Content-Length", "100"),), stall="after_headers"
    )
    fetcher = make_fetcher(allow_private=True, timeout=0.3)
    message = await refusal(fetcher, server.url("/slow.png"))
    assert message == "image: could not fetch URL (timed out)"


# --- data URIs --------------------------------------------------------------------------------


async def test_base64_data_uri(make_fetcher: FetcherFactory, png: bytes) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    media = await make_fetcher().fetch("image", uri, IMAGE)
    assert (media.data, media.content_type, media.source) == (png, "image/png", "data:")


async def test_percent_encoded_data_uri(make_fetcher: FetcherFactory) -> None:
    wav = pcm_wav()
    media = await make_fetcher().fetch("audio", "DATA:," + quote_from_bytes(wav), AUDIO)
    assert (media.data, media.content_type) == (wav, "audio/wav")


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("data:image/png;base64,iVBORw0KGgo*!", "data URI is not valid base64"),
        ("data:image/png;base64,iVBORw0KGgoé", "data URI is not valid base64"),
        ("data:image/png;base64,iVBORw0KGg", "data URI is not valid base64"),
        ("data:image/png;base64", "not a valid data URI"),
        ("data:,hello", "not a valid image"),
    ],
)
async def test_bad_data_uris(make_fetcher: FetcherFactory, uri: str, problem: str) -> None:
    assert await refusal(make_fetcher(), uri) == f"image: {problem}"


@pytest.mark.parametrize(
    ("size", "fits"), [(99, True), (100, True), (101, False), (102, False), (10_000, False)]
)
async def test_data_uri_size_cap(make_fetcher: FetcherFactory, size: int, fits: bool) -> None:
    fetcher = make_fetcher(max_bytes=100)
    for uri in (
        "data:;base64," + base64.b64encode(b"\x00" * size).decode(),
        "data:," + quote_from_bytes(b"\x00" * size),
    ):
        message = await refusal(fetcher, uri)
        assert message == ("image: not a valid image" if fits else "image: larger than 100 bytes")


# --- check_url (webhook_url) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:9/hook", "URL resolves to a private or loopback address"),
        ("https://localhost/hook", "URL resolves to a private or loopback address"),
        ("http://[::1]/hook", "URL resolves to a private or loopback address"),
        ("http://0x7f000001/hook", "URL resolves to a private or loopback address"),
        ("ftp://127.0.0.1/hook", "URL must be http or https"),
        ("http://u:p@127.0.0.1/hook", "URL must not contain credentials"),
        ("http://a..b/hook", "URL host could not be resolved"),
        ("http://nowhere.example/hook", "URL host could not be resolved"),
    ],
)
async def test_check_url_refuses(make_fetcher: FetcherFactory, url: str, problem: str) -> None:
    with pytest.raises(MediaInputError) as caught:
        await make_fetcher().check_url("webhook_url", url)
    assert caught.value.message == f"webhook_url: {problem}"


async def test_check_url_accepts(make_fetcher: FetcherFactory) -> None:
    # check_url resolves and never connects; these literals need no DNS either.
    await make_fetcher(allow_private=True).check_url("webhook_url", "http://127.0.0.1:9/hook")
    await make_fetcher().check_url("webhook_url", "https://8.8.8.8/hook")
