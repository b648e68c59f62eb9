"""What timing a request for /metrics adds, in microseconds, within one process.

    .venv/bin/python bench/bench_metrics.py [--requests 20000] [--rounds 25]

The request-timing middleware (config/serving/metrics.py) as Django chains it (each
middleware inside Django's exception wrapper), around a view that answers at once, against
the same view without it: a request resolved to /documents/{fileId}, answered 200, its
duration written to the histogram in METRICS_DIR (multiprocess mode, as served). The two
alternate batch for batch (`--rounds`, each of `--requests` requests), so that what else
the machine does falls on both; prints the median microseconds per request of each and
their difference, the middleware's cost. bench_http.py measures the whole service with
and without it, over HTTP and under load (`--versus METRICS_ENABLED=false`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=25)
    return parser.parse_args()


async def batch(chain: Any, request: Any, requests: int) -> float:
    """Microseconds per request over `requests` requests."""
    started = time.perf_counter()
    for _ in range(requests):
        await chain(request)
    return (time.perf_counter() - started) / requests * 1e6


async def main() -> None:
    args = parse_args()
    from django.core.handlers.exception import convert_exception_to_response
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve

    from config.serving.metrics import RequestMetrics

    path = "/documents/0123456789abcdef0123456789abcdef"
    request = RequestFactory().get(path)
    request.resolver_match = resolve(path)  # as Django's resolver leaves it
    response = HttpResponse(b"{}", content_type="application/json")

    async def view(request: Any) -> HttpResponse:
        return response

    inner = convert_exception_to_response(view)
    chains = {
        "with metrics": convert_exception_to_response(RequestMetrics(inner)),
        "without": inner,
    }
    for chain in chains.values():
        await batch(chain, request, args.requests)  # warm: the histogram's child, caches
    times: dict[str, list[float]] = {name: [] for name in chains}
    for _ in range(args.rounds):
        for name, chain in chains.items():
            times[name].append(await batch(chain, request, args.requests))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        print(f"{name:<14} {value:6.2f} µs per request (rounds {spread})")
    print(f"metrics add    {medians['with metrics'] - medians['without']:6.2f} µs per request")


if __name__ == "__main__":
    os.environ.update(
        {
            "ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "WARM_UP": "false",
            "DATA_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
        }
    )
    import django

    django.setup()
    asyncio.run(main())
