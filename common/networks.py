"""Networks in settings: CIDR entries parsed once, each bad one named."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(name: str, entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Each entry as a network in CIDR notation, or ImproperlyConfigured naming it."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} entry {entry!r} is not a network in CIDR notation "
                f"(e.g. 10.20.0.0/16): {exc}"
            ) from exc
    return tuple(networks)
