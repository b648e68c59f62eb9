"""fetch_url against real HTTP servers on loopback addresses.

An audit hook watches every socket connect and DNS lookup made during these tests: it
records them, and blocks (and fails the test on) anything that is not loopback, so a
refusal test proves the fetcher refused before opening any connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from ingest.exceptions import ContentTooLarge, FetchFailed, UrlRefused
from ingest.sources.fetching import FetchedResource, FetchPolicy, fetch_url, is_public_address
from tests.support.http_server import CannedHandler, CannedServer
from tests.support.processes import free_port

LIMIT = 64 * 1024

# Success paths trust 127.0.0.1 only, so 127.0.0.2 (also loopback) stays refused.
TRUST_127_0_0_1 = FetchPolicy(
    max_bytes=LIMIT,
    allow_private=False,
    trusted_networks=(ipaddress.ip_network("127.0.0.1/32"),),
    connect_timeout=2,
    read_timeout=2,
    max_redirects=2,
)
TRUST_NOTHING = dataclasses.replace(TRUST_127_0_0_1, trusted_networks=())


class NetworkGuard:
    """Audit hook: record connects and lookups; block any that leave loopback."""

    def __init__(self) -> None:
        self.active = False
        self.connects: list[str] = []
        self.blocked: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.connects.append(address[0])
                self._allow_only_loopback(f"connect to {address[0]}", address[0])
        elif event == "socket.getaddrinfo" and args[0] not in (None, "localhost"):
            self._allow_only_loopback(f"DNS lookup of {args[0]}", args[0])

    def _allow_only_loopback(self, what: str, host: str | bytes) -> None:
        try:
            loopback = ipaddress.ip_address(str(host).partition("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.blocked.append(what)
            raise PermissionError(f"tests may only reach loopback addresses, not: {what}")


GUARD = NetworkGuard()
sys.addaudithook(GUARD)  # hooks cannot be removed; GUARD.active confines it to these tests


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[NetworkGuard]:
    GUARD.connects.clear()
    GUARD.blocked.clear()
    GUARD.active = True
    try:
        yield GUARD
    finally:
        GUARD.active = False
    assert not GUARD.blocked, f"the fetcher tried to leave loopback: {GUARD.blocked}"


@pytest.fixture
def server() -> Iterator[CannedServer]:
    with CannedServer("127.0.0.1") as running:
        yield running


@pytest.fixture
def other_server() -> Iterator[CannedServer]:
    """On 127.0.0.2: loopback, but outside the trusted 127.0.0.1/32."""
    with CannedServer("127.0.0.2") as running:
        yield running


def fetch(url: str, policy: FetchPolicy | None = TRUST_127_0_0_1) -> FetchedResource:
    return asyncio.run(fetch_url(url, policy=policy))


def redirect_to(location: str, status: int = 302):
    return lambda handler: handler.respond(status, headers=[("Location", location)])


# --- Success -------------------------------------------------------------------------


def test_fetches_body_media_type_charset_and_filename(server: CannedServer) -> None:
    body = "Grüße aus dem Netz\n".encode()
    server.routes["/docs/notes%20v2.txt"] = lambda h: h.respond(
        200, body, [("Content-Type", "Text/Plain; Charset=UTF-8")]
    )

    resource = fetch(server.url("/docs/notes%20v2.txt"))

    assert resource.data == body
    assert resource.content_type == "text/plain"
    assert resource.charset == "utf-8"
    assert resource.filename == "notes v2.txt"
    assert resource.url == server.url("/docs/notes%20v2.txt")


@pytest.mark.parametrize(
    ("header", "content_type", "charset"),
    [
        ("text/html", "text/html", None),
        ('text/html; charset="ISO-8859-1"', "text/html", "iso-8859-1"),
        (None, "", None),
    ],
)
def test_reports_media_type_without_parameters(
    server: CannedServer, header: str | None, content_type: str, charset: str | None
) -> None:
    headers = [("Content-Type", header)] if header else []
    server.routes["/page"] = lambda h: h.respond(200, b"<p>hi</p>", headers)

    resource = fetch(server.url("/page"))

    assert (resource.content_type, resource.charset) == (content_type, charset)


@pytest.mark.parametrize(
    ("path", "filename"),
    [("/reports/2024/", "2024"), ("/", ""), ("/a/r%C3%A9sum%C3%A9.pdf?x=1", "résumé.pdf")],
)
def test_filename_is_last_non_empty_path_segment_decoded(
    server: CannedServer, path: str, filename: str
) -> None:
    server.routes[path.partition("?")[0]] = lambda h: h.respond(200, b"x")

    assert fetch(server.url(path)).filename == filename


def test_follows_redirects_up_to_the_limit_and_reports_final_url(server: CannedServer) -> None:
    server.routes["/start"] = redirect_to("/moved", 301)
    server.routes["/moved"] = redirect_to("final/report.txt", 307)  # relative to /moved
    server.routes["/final/report.txt"] = lambda h: h.respond(
        200, b"the report", [("Content-Type", "text/plain")]
    )

    resource = fetch(server.url("/start"))  # two redirects, max_redirects=2

    assert resource.data == b"the report"
    assert resource.url == server.url("/final/report.txt")
    assert resource.filename == "report.txt"
    assert server.requests == ["/start", "/moved", "/final/report.txt"]


def test_allow_private_admits_loopback_by_name_and_literal(
    server: CannedServer, other_server: CannedServer
) -> None:
    policy = dataclasses.replace(TRUST_NOTHING, allow_private=True)
    server.routes["/a"] = lambda h: h.respond(200, b"one")
    other_server.routes["/b"] = lambda h: h.respond(200, b"two")

    assert fetch(f"http://localhost:{server.port}/a", policy).data == b"one"
    assert fetch(other_server.url("/b"), policy).data == b"two"


def test_body_of_exactly_max_bytes_is_accepted(server: CannedServer) -> None:
    server.routes["/exact"] = lambda h: h.stream_chunks(
        [b"x" * 1000] * (LIMIT // 1000) + [b"x" * (LIMIT % 1000)]
    )

    assert len(fetch(server.url("/exact")).data) == LIMIT


# --- Refused before any connection ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:{port}/", "resolves to"),
        ("http://127.0.0.1:{port}/", "a loopback address"),
        ("http://[::1]:{port}/", "a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "IPv4-mapped address of 127.0.0.1, a loopback"),
        ("http://2130706433:{port}/", "non-standard spelling of 127.0.0.1, a loopback"),
        ("http://0x7f.1:{port}/", "non-standard spelling of 127.0.0.1, a loopback"),
        ("http://127.1:{port}/", "non-standard spelling of 127.0.0.1, a loopback"),
        ("http://10.0.0.1/", "a private address"),
        ("http://192.168.1.1/", "a private address"),
        ("http://172.16.0.1/", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://100.64.0.1/", "a carrier-grade NAT address"),
        ("http://0.0.0.0:{port}/", "an unspecified address"),
        ("http://[::]:{port}/", "an unspecified address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://[ff02::1]/", "a multicast address"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://[2002:a00:1::]/", "6to4 address embedding 10.0.0.1, a private address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 address of 169.254.169.254, a link-local"),
    ],
)
def test_refuses_non_public_hosts_without_connecting(
    server: CannedServer, network_guard: NetworkGuard, url: str, reason: str
) -> None:
    with pytest.raises(UrlRefused, match="private addresses are refused") as refused:
        fetch(url.format(port=server.port), TRUST_NOTHING)

    assert reason in str(refused.value)
    assert network_guard.connects == []
    assert server.connections == 0


def test_localhost_refusal_names_the_host_and_the_address(server: CannedServer) -> None:
    with pytest.raises(UrlRefused) as refused:
        fetch(f"http://localhost:{server.port}/", TRUST_NOTHING)

    assert str(refused.value).startswith("URL host 'localhost' resolves to ")
    assert "a loopback address; private addresses are refused" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("ftp://example.com/file.txt", "scheme 'ftp' is not allowed"),
        ("gopher://example.com/", "scheme 'gopher' is not allowed"),
        ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
        ("example.com/doc.pdf", "has no scheme"),
        ("http:///doc.pdf", "has no host"),
        ("http://user:secret@127.0.0.1/", "credentials"),
    ],
)
def test_refuses_urls_that_are_not_plain_http(
    network_guard: NetworkGuard, url: str, reason: str
) -> None:
    with pytest.raises(UrlRefused, match=reason):
        fetch(url)

    assert network_guard.connects == []


def test_default_policy_comes_from_settings(server: CannedServer, settings) -> None:
    settings.INGEST_ALLOW_PRIVATE_URLS = False
    settings.INGEST_TRUSTED_NETWORKS = []

    with pytest.raises(UrlRefused, match="a loopback address"):
        asyncio.run(fetch_url(server.url("/")))

    assert server.connections == 0


# --- Redirects ------------------------------------------------------------------------


def test_redirect_to_loopback_outside_trusted_network_is_refused(
    server: CannedServer, other_server: CannedServer
) -> None:
    server.routes["/go"] = redirect_to(other_server.url("/secret"))

    with pytest.raises(UrlRefused) as refused:
        fetch(server.url("/go"))

    assert str(refused.value).startswith(f"Redirect to {other_server.url('/secret')} refused")
    assert "a loopback address" in str(refused.value)
    assert other_server.connections == 0


def test_redirect_to_cloud_metadata_address_is_refused(
    server: CannedServer, network_guard: NetworkGuard
) -> None:
    server.routes["/go"] = redirect_to("http://169.254.169.254/latest/meta-data/")

    with pytest.raises(
        UrlRefused, match=re.escape("Redirect to http://169.254.169.254/latest/meta-data/ refused")
    ):
        fetch(server.url("/go"))

    assert set(network_guard.connects) == {"127.0.0.1"}


def test_redirect_to_non_http_scheme_is_refused(server: CannedServer) -> None:
    server.routes["/go"] = redirect_to("file:///etc/passwd")

    with pytest.raises(UrlRefused, match=r"Redirect to file:///etc/passwd refused: .*'file'"):
        fetch(server.url("/go"))


def test_endless_redirect_loop_is_refused_after_max_redirects(server: CannedServer) -> None:
    server.routes["/loop"] = redirect_to("/loop")

    with pytest.raises(UrlRefused, match="redirected more than 2 times"):
        fetch(server.url("/loop"))

    assert server.requests == ["/loop"] * 3


def test_redirect_without_location_fails(server: CannedServer) -> None:
    server.routes["/go"] = lambda h: h.respond(302)

    with pytest.raises(FetchFailed, match="without a Location"):
        fetch(server.url("/go"))


# --- Failures -------------------------------------------------------------------------


def test_http_error_status_fails_naming_the_status(server: CannedServer) -> None:
    with pytest.raises(FetchFailed, match="answered HTTP 404 Not Found"):
        fetch(server.url("/missing"))


def test_closed_port_fails_with_connection_refused() -> None:
    with pytest.raises(
        FetchFailed, match=r"Could not connect to 127\.0\.0\.1:\d+: Connection refused"
    ):
        fetch(f"http://127.0.0.1:{free_port()}/")


def test_stalled_body_fails_after_read_timeout(server: CannedServer) -> None:
    def stall_mid_body(handler: CannedHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"the first bytes")
        handler.stall()

    server.routes["/slow"] = stall_mid_body
    policy = dataclasses.replace(TRUST_127_0_0_1, read_timeout=0.5)

    started = time.monotonic()
    with pytest.raises(FetchFailed, match=r"stopped sending for more than 0\.5 s"):
        fetch(server.url("/slow"), policy)

    # Bounded far above the 0.5 s it takes and far below forever (the server stalls).
    assert time.monotonic() - started < 10


# --- Size limit -----------------------------------------------------------------------


def test_declared_length_over_limit_is_refused_without_reading_the_body(
    server: CannedServer,
) -> None:
    # The server never sends the body: a fetcher that tried to read it would time out.
    server.routes["/huge"] = lambda h: (h.respond(200, content_length=100 * LIMIT), h.stall())

    patient = dataclasses.replace(TRUST_127_0_0_1, read_timeout=30)
    started = time.monotonic()
    with pytest.raises(ContentTooLarge, match=f"is {100 * LIMIT} bytes, over the limit"):
        fetch(server.url("/huge"), patient)

    assert time.monotonic() - started < patient.read_timeout / 2  # it never waited to read


def test_chunked_body_over_limit_stops_reading_at_the_limit(server: CannedServer) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 16384

    # Endless: only a fetcher that stops reading at the limit gets an answer.
    server.routes["/huge"] = lambda h: h.stream_chunks(endless())

    with pytest.raises(ContentTooLarge, match=f"over the limit of {LIMIT} bytes"):
        fetch(server.url("/huge"))


# --- Addresses and settings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("2a00:1450:4001:82a::200e", True),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::808:808", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("0.1.2.3", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),
        ("198.51.100.7", False),
        ("203.0.113.9", False),
        ("198.18.0.1", False),
        ("192.0.0.8", False),
        ("192.88.99.1", False),
        ("3fff::1", False),
        ("5f00::1", False),
        ("64:ff9b:1::1", False),
        ("100::1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("2002:a9fe:a9fe::", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_policy_from_settings(settings) -> None:
    settings.MAX_UPLOAD_BYTES = 1234
    settings.INGEST_ALLOW_PRIVATE_URLS = False
    settings.INGEST_TRUSTED_NETWORKS = ["10.20.0.0/16", "fd00::/8", "192.168.1.5"]
    settings.FETCH_CONNECT_TIMEOUT = 1.5
    settings.FETCH_READ_TIMEOUT = 7.0
    settings.FETCH_MAX_REDIRECTS = 4

    assert FetchPolicy.from_settings() == FetchPolicy(
        max_bytes=1234,
        allow_private=False,
        trusted_networks=(
            ipaddress.ip_network("10.20.0.0/16"),
            ipaddress.ip_network("fd00::/8"),
            ipaddress.ip_network("192.168.1.5/32"),
        ),
        connect_timeout=1.5,
        read_timeout=7.0,
        max_redirects=4,
    )


@pytest.mark.parametrize("entry", ["intranet", "10.20.0.0/33", "10.20.0.1/16"])
def test_invalid_trusted_network_is_improperly_configured(settings, entry: str) -> None:
    settings.INGEST_TRUSTED_NETWORKS = ["10.0.0.0/8", entry]

    with pytest.raises(ImproperlyConfigured, match=f"INGEST_TRUSTED_NETWORKS entry '{entry}'"):
        FetchPolicy.from_settings()
