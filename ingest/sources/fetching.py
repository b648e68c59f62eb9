"""Fetch a document from a URL without letting the caller reach private networks.

Every address is checked where it is used: IP-literal hosts before the request, host
names inside the resolver the connector calls at connect time, so the address checked is
the address connected to (no DNS-rebinding window). Redirects are followed here, one hop
at a time, each one checked again.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from django.conf import settings
from yarl import URL

from common.networks import IPNetwork, parse_networks
from ingest.exceptions import ContentTooLarge, FetchFailed, UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "docservice/1.0"
CHUNK_BYTES = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_IPV4_NAMED = (
    (ipaddress.ip_network("100.64.0.0/10"), "a carrier-grade NAT address"),
    (ipaddress.ip_network("10.0.0.0/8"), "a private address"),
    (ipaddress.ip_network("172.16.0.0/12"), "a private address"),
    (ipaddress.ip_network("192.168.0.0/16"), "a private address"),
    (ipaddress.ip_network("192.0.2.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.51.100.0/24"), "a documentation address"),
    (ipaddress.ip_network("203.0.113.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking address"),
    # Python 3.11's tables miss these two.
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol-assignment address"),
    (ipaddress.ip_network("192.88.99.0/24"), "a 6to4 relay anycast address"),
)
_IPV6_NAMED = (
    (ipaddress.ip_network("fc00::/7"), "a unique-local (private) address"),
    (ipaddress.ip_network("2001:db8::/32"), "a documentation address"),
    (ipaddress.ip_network("3fff::/20"), "a documentation address"),  # RFC 9637
)
# The well-known NAT64 prefix (RFC 6052): on an IPv6-only network with DNS64 every public
# IPv4 host appears under it, so it is judged by the IPv4 address it carries.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchedResource:
    url: str
    data: bytes
    content_type: str
    charset: str | None
    filename: str


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    allow_private: bool
    trusted_networks: tuple[IPNetwork, ...]
    connect_timeout: float
    read_timeout: float
    max_redirects: int

    @classmethod
    def from_settings(cls) -> FetchPolicy:
        return cls(
            max_bytes=settings.MAX_UPLOAD_BYTES,
            allow_private=settings.INGEST_ALLOW_PRIVATE_URLS,
            trusted_networks=parse_networks(
                "INGEST_TRUSTED_NETWORKS", settings.INGEST_TRUSTED_NETWORKS
            ),
            connect_timeout=settings.FETCH_CONNECT_TIMEOUT,
            read_timeout=settings.FETCH_READ_TIMEOUT,
            max_redirects=settings.FETCH_MAX_REDIRECTS,
        )


def is_public_address(ip: IPAddress) -> bool:
    """True if `ip` is a globally routable unicast address, embedded IPv4 included."""
    return _non_public_reason(ip) is None


def _special_reason(ip: IPAddress) -> str | None:
    """Why `ip` itself (embedded addresses aside) is not public; None if it is."""
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    named = _IPV6_NAMED if isinstance(ip, ipaddress.IPv6Address) else _IPV4_NAMED
    for network, reason in named:
        if ip in network:
            return reason
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global or ip.is_private:
        return "a special-purpose (non-global) address"
    return None


def _non_public_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not public, as "a loopback address"; None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        return _non_public_reason_v6(ip)
    return _special_reason(ip)


def _non_public_reason_v6(ip: ipaddress.IPv6Address) -> str | None:
    # These two are an IPv4 address in another spelling: judge that address alone.
    for kind, v4 in (("IPv4-mapped", ip.ipv4_mapped), ("NAT64", _nat64_ipv4(ip))):
        if v4 is not None:
            reason = _non_public_reason(v4)
            return f"an {kind} address of {v4}, {reason}" if reason else None
    # Tunnels carry an IPv4 endpoint that must be public too.
    embedded = [("6to4", ip.sixtofour)] + [("Teredo", v4) for v4 in ip.teredo or ()]
    for kind, v4 in embedded:
        if v4 is not None and (reason := _non_public_reason(v4)):
            return f"a {kind} address embedding {v4}, {reason}"
    return _special_reason(ip)


def _nat64_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None


def _refusal_reason(ip: IPAddress, policy: FetchPolicy) -> str | None:
    """Why the policy refuses `ip`; None if it may be connected to."""
    if policy.allow_private:
        return None
    reason = _non_public_reason(ip)
    if reason is None:
        return None
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    if any(addr in network for addr in candidates for network in policy.trusted_networks):
        return None
    return reason


class _CheckingResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and refuses if any answer is not allowed.

    The connector connects only to the addresses returned here, so this is the check that
    cannot be raced by a DNS answer that changes between a check and the connection.
    """

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            try:
                ip = ipaddress.ip_address(result["host"])
            except ValueError as exc:
                raise UrlRefused(
                    f"URL host {host!r} resolves to {result['host']!r}, which cannot be checked"
                ) from exc
            reason = _refusal_reason(ip, self._policy)
            if reason:
                raise UrlRefused(
                    f"URL host {host!r} resolves to {ip}, {reason}; private addresses are refused"
                )
        return results

    async def close(self) -> None:
        await self._resolver.close()


def _check_url(url: URL, policy: FetchPolicy) -> None:
    """Refuse what the resolver never sees: bad schemes, credentials and IP-literal hosts."""
    if url.scheme not in ("http", "https"):
        if not url.scheme:
            raise UrlRefused(f"URL {str(url)!r} has no scheme; use http:// or https://")
        raise UrlRefused(f"URL scheme {url.scheme!r} is not allowed; use http or https")
    if url.user is not None or url.password is not None:
        raise UrlRefused("URLs with credentials (user:password@) are refused")
    host = url.raw_host
    if not host or url.host is None:
        raise UrlRefused(f"URL {str(url)!r} has no host")
    try:
        ip = ipaddress.ip_address(url.host)  # url.host keeps an IPv6 zone decoded ("%eth0")
    except ValueError:
        ip = None
    if ip is None:
        try:
            legacy = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            legacy = None
        if legacy is not None:
            # 2130706433, 0x7f.1, 127.1: socket libraries read these as addresses.
            spelling = f"URL host {host!r} is a non-standard spelling of {legacy}"
            if reason := _refusal_reason(legacy, policy):
                raise UrlRefused(f"{spelling}, {reason}; private addresses are refused")
            raise UrlRefused(f"{spelling}; write IP addresses as four decimal numbers")
        # aiohttp's connector takes these for IP literals and skips the resolver.
        if ":" in host or host.replace(".", "").isdigit():
            raise UrlRefused(f"URL host {host!r} is not a valid IP address")
        return
    reason = _refusal_reason(ip, policy)
    if reason:
        raise UrlRefused(f"URL host {url.host!r} is {reason}; private addresses are refused")


def _refused_cause(exc: BaseException) -> UrlRefused | None:
    """A refusal from the resolver, should aiohttp ever wrap it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, UrlRefused):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


async def _request(
    session: aiohttp.ClientSession, url: URL, policy: FetchPolicy
) -> aiohttp.ClientResponse:
    _check_url(url, policy)
    where = f"{url.host}:{url.port}"
    try:
        return await session.get(url, allow_redirects=False)
    except UrlRefused:
        raise
    except aiohttp.ClientConnectorDNSError as exc:
        raise FetchFailed(f"URL host {url.host!r} does not resolve") from exc
    except aiohttp.ClientSSLError as exc:
        raise FetchFailed(f"TLS connection to {where} failed: {exc}") from exc
    except aiohttp.ClientConnectorError as exc:
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno else str(exc.os_error)
        raise FetchFailed(f"Could not connect to {where}: {reason}") from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise FetchFailed(
            f"Connecting to {where} timed out after {policy.connect_timeout:g} s"
        ) from exc
    except TimeoutError as exc:
        raise FetchFailed(f"{url} did not answer within {policy.read_timeout:g} s") from exc
    except aiohttp.InvalidURL as exc:
        raise UrlRefused(f"URL {str(url)!r} is not valid") from exc
    except (aiohttp.ClientError, OSError) as exc:
        if refused := _refused_cause(exc):
            raise refused from exc
        raise FetchFailed(f"Fetching {url} failed: {exc or type(exc).__name__}") from exc


async def _read_body(response: aiohttp.ClientResponse, policy: FetchPolicy) -> bytes:
    limit = policy.max_bytes
    declared = response.content_length
    if declared is not None and declared > limit:
        raise ContentTooLarge(
            f"{response.url} is {declared} bytes, over the limit of {limit} bytes"
        )
    body = bytearray()
    try:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise ContentTooLarge(f"{response.url} is over the limit of {limit} bytes")
    except TimeoutError as exc:
        raise FetchFailed(
            f"{response.url} stopped sending for more than {policy.read_timeout:g} s "
            "(or took too long overall)"
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise FetchFailed(f"Reading {response.url} failed: {exc or type(exc).__name__}") from exc
    return bytes(body)


def _media_type(response: aiohttp.ClientResponse) -> tuple[str, str | None]:
    """The declared media type and charset, lower case; ("", None) when undeclared
    (aiohttp reports a missing Content-Type as application/octet-stream)."""
    if aiohttp.hdrs.CONTENT_TYPE not in response.headers:
        return "", None
    return response.content_type, (response.charset or "").lower() or None


def _filename(url: URL) -> str:
    # yarl's URL.name is "" after a trailing slash; "/reports/2024/" should name "2024".
    segments = [part for part in url.parts if part not in ("", "/")]
    return segments[-1] if segments else ""


async def fetch_url(url: str, *, policy: FetchPolicy | None = None) -> FetchedResource:
    """GET `url`, following redirects, and return its body.

    Raises UrlRefused (the URL or an address it leads to may not be fetched), FetchFailed
    (allowed but unreachable, timed out or not 2xx) or ContentTooLarge (over max_bytes).
    """
    if policy is None:
        policy = FetchPolicy.from_settings()
    try:
        current = URL(url).with_fragment(None)
    except ValueError as exc:
        raise UrlRefused(f"{url!r} is not a valid URL") from exc
    # sock_read bounds each silence; total bounds a server that trickles bytes forever.
    timeout = aiohttp.ClientTimeout(
        total=policy.connect_timeout + 2 * policy.read_timeout,
        sock_connect=policy.connect_timeout,
        sock_read=policy.read_timeout,
    )
    connector = aiohttp.TCPConnector(resolver=_CheckingResolver(policy), use_dns_cache=False)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,  # never route through a proxy from the environment
        headers={"User-Agent": USER_AGENT},
    ) as session:
        redirects = 0
        while True:
            try:
                response = await _request(session, current, policy)
            except UrlRefused as exc:
                if redirects:
                    raise UrlRefused(f"Redirect to {current} refused: {exc}") from exc
                raise
            async with response:
                if response.status in REDIRECT_STATUSES:
                    current = _redirect_target(response)
                    redirects += 1
                    if redirects > policy.max_redirects:
                        raise UrlRefused(f"{url} redirected more than {policy.max_redirects} times")
                    continue
                if not 200 <= response.status < 300:
                    status = f"{response.status} {response.reason or ''}".strip()
                    raise FetchFailed(f"{current} answered HTTP {status}")
                data = await _read_body(response, policy)
                content_type, charset = _media_type(response)
                return FetchedResource(
                    url=str(current),
                    data=data,
                    content_type=content_type,
                    charset=charset,
                    filename=_filename(current),
                )


def _redirect_target(response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(
            f"{response.url} answered HTTP {response.status} (a redirect) without a Location"
        )
    try:
        return response.url.join(URL(location)).with_fragment(None)
    except ValueError as exc:
        raise FetchFailed(f"{response.url} redirected to an invalid URL {location!r}") from exc
