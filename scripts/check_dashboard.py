"""Prove docs/grafana-dashboard.json shows data from a real service: every panel's query
run against a real Prometheus scraping a real service that has just been given traffic.

    .venv/bin/python scripts/check_dashboard.py [--wait 15]

The service runs as `make run` starts it (gunicorn with 2 workers, and a `db_worker`;
metrics on and loopback scrapes allowed, the defaults) on a scratch SQLite database in a
temporary DATA_DIR, with the hashing embedder. Debian's `prometheus` (apt-get install
prometheus) scrapes its /metrics every second into a store of its own in the same
directory, while the script ingests (synchronously, in the background, a PNG scan read by
OCR when Tesseract is installed), asks, and makes a 404 and a 401. After --wait seconds
of scrapes each panel target's `expr` is run on Prometheus's HTTP API, Grafana's interval
variables as `1m` and the dashboard's variables as their match-all value, and one line
per target says how many series it returned and their highest value: OK, or EMPTY and
why.

Exit status 1 when a query fails, or when a panel is empty for no reason the script knows
(a metric name or a label that no series has is one); 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.live import LiveService  # noqa: E402
from tests.support.processes import (  # noqa: E402
    child_env,
    free_port,
    run_manage,
    running_server,
    running_worker,
)

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# Grafana's own variables, as a dashboard with a 1 s scrape over a few minutes would get.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}
GRAFANA_NUMBERS = {"__interval_ms": "60000", "__range_s": "60", "__range_ms": "60000"}
SELECTOR = re.compile(r"\b(docservice_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
DOCUMENTS = {
    "parking.md": "# Parking\n\nEmployees park in lot B behind the warehouse. Visitors park "
    "in front of the main entrance.",
    "holidays.md": "# Holidays\n\nStaff have twenty-five days of paid holiday a year, booked "
    "through the team calendar at least two weeks ahead.",
    "expenses.md": "# Expenses\n\nReceipts for travel expenses go to finance within thirty "
    "days; meals are paid up to forty euros a day.",
    "security.md": "# Security\n\nVisitors sign in at reception and wear a badge; the "
    "server room is opened by the duty engineer only.",
}
SCAN_TEXT = "Maintenance notes\nThe boiler room key is kept\nby the night porter."
QUESTIONS = (
    "Where do employees park?",
    "How many days of holiday do staff have?",
    "Who keeps the boiler room key?",
)


@dataclass(frozen=True)
class Target:
    """One query of a panel, as the dashboard has it and as Prometheus is sent it."""

    title: str
    ref_id: str
    expr: str
    query: str


@dataclass(frozen=True)
class Traffic:
    """What the traffic did that an empty panel may be explained by."""

    database: str
    scans: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wait", type=float, default=15, help="seconds of scrapes after the traffic"
    )
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD, help="(default: %(default)s)")
    return parser.parse_args()


# -- the dashboard --------------------------------------------------------------------


def dashboard_targets(dashboard: dict[str, Any]) -> list[Target]:
    """Every panel target's expr, rows' panels included, with Grafana's variables replaced."""
    variables = {
        variable["name"]: variable.get("allValue") or ".*"
        for variable in dashboard.get("templating", {}).get("list", [])
    }
    targets = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    expr = target["expr"]
                    query = substituted(expr, variables)
                    targets.append(Target(panel["title"], target.get("refId", ""), expr, query))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    return targets


def substituted(expr: str, variables: dict[str, str]) -> str:
    """`expr` with $name, ${name}, ${name:format} and [[name]] replaced by their values."""
    values = {**GRAFANA_NUMBERS, **GRAFANA_INTERVALS, **variables}
    # Longest names first: $__interval_ms is not $__interval followed by "_ms".
    for name in sorted(values, key=len, reverse=True):
        pattern = rf"\$\{{{re.escape(name)}(?::[^}}]*)?\}}|\[\[{re.escape(name)}\]\]"
        pattern += rf"|\${re.escape(name)}\b"
        expr = re.sub(pattern, values[name].replace("\\", "\\\\"), expr)  # taken literally
    return expr


# -- Prometheus -----------------------------------------------------------------------


class Prometheus:
    """Prometheus's HTTP API on loopback."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer; raises PromQLError with the error otherwise."""
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def label_names(self, metric: str) -> set[str]:
        series = self.get("/api/v1/series", **{"match[]": metric})
        return {name for labels in series for name in labels}


class PromQLError(Exception):
    """Prometheus refused a query, with its own message."""


@contextlib.contextmanager
def running_prometheus(scratch: Path, scrape: str) -> Iterator[Prometheus]:
    """Debian's prometheus scraping `scrape` (host:port) every second, its store and log in
    `scratch`; stopped (SIGTERM, then killed) at the end."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        sys.exit("prometheus is not installed: apt-get install prometheus")
    # JSON is YAML: no YAML library needed for the configuration.
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "docservice",
                "metrics_path": "/metrics",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [scrape]}],
            }
        ],
    }
    config_file = scratch / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = scratch / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={scratch / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                sys.exit(f"prometheus exited:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(base_url + "/-/ready", timeout=5)  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"prometheus not ready within 60 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        yield Prometheus(base_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_scrapes(prometheus: Prometheus, *, timeout: float = 60) -> None:
    """Until Prometheus has scraped the service successfully."""
    deadline = time.monotonic() + timeout
    while True:
        targets = prometheus.get("/api/v1/targets")["activeTargets"]
        if targets and all(target["health"] == "up" for target in targets):
            return
        if time.monotonic() > deadline:
            errors = [target.get("lastError") for target in targets]
            sys.exit(f"Prometheus could not scrape the service: {errors}")
        time.sleep(0.5)


# -- the service and its traffic -----------------------------------------------------


def manage(env: dict[str, str], *args: str) -> str:
    done = run_manage(*args, env=env)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def scanned_png(text: str) -> bytes:
    """A page of text as a scanner sees it (tests/formats/test_scans.py's way), as PNG."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 32) if FONT.exists() else ImageFont.load_default(size=32)
    page = Image.new("L", (1275, 600), 255)
    ImageDraw.Draw(page).multiline_text((80, 80), text, fill=0, font=font, spacing=14)
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def expect(what: str, reply: tuple[int, Any], *wanted: int) -> Any:
    """The answer of `reply` (status, answer), or exit saying what was asked and got."""
    status, answer = reply
    if status not in wanted:
        sys.exit(f"{what}: {status}, not {' or '.join(map(str, wanted))}: {str(answer)[:500]}")
    return answer


def drive_traffic(service: LiveService, *, scan: bool) -> None:
    """Every kind of request twice, a few scrapes apart: a labelled series (a route, a
    status) first appears with its first request, and rate() counts no increase for a
    series' first sample, so a request made once would draw a flat zero."""
    names = list(DOCUMENTS)
    requests_round(service, names[:2])
    time.sleep(2.5)
    requests_round(service, names[2:], scan=scan)


def requests_round(service: LiveService, names: list[str], *, scan: bool = False) -> None:
    """Ingests (one synchronous, the others in the background, the scan among them), the
    jobs waited for, questions, a 404, a 401, the documents listed and /health."""
    job_ids = []
    for number, name in enumerate(names):
        fields = {"async": "true"} if number % 2 else {}
        reply = service.post_file(name, DOCUMENTS[name].encode(), fields)
        answer = expect(f"POST /ingest/file {name}", reply, *((202,) if fields else (200, 201)))
        if fields:
            job_ids.append(answer["jobId"])
    if scan:
        reply = service.post_file("boiler.png", scanned_png(SCAN_TEXT), {"async": "true"})
        job_ids.append(expect("POST /ingest/file boiler.png", reply, 202)["jobId"])
    deadline = time.monotonic() + 120
    for job_id in job_ids:
        while (job := service.call("GET", f"/jobs/{job_id}")[1])["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            if time.monotonic() > deadline:
                sys.exit(f"job {job_id} did not end within 120 s: {job}")
            time.sleep(0.3)
        if job["status"] != "succeeded":
            sys.exit(f"job {job_id} {job['status']}: {job}")
    for question in QUESTIONS:
        expect(f"POST /ask {question!r}", service.post_json("/ask", {"q": question}), 200)
    missing = service.call("GET", "/documents/no-such-document")
    expect("GET /documents/no-such-document", missing, 404)
    expect("GET /documents without a key", service.call("GET", "/documents", with_key=False), 401)
    expect("GET /documents", service.call("GET", "/documents"), 200)
    expect("GET /health", service.call("GET", "/health", with_key=False), 200)


# -- the check ------------------------------------------------------------------------


def why_empty(prometheus: Prometheus, target: Target, traffic: Traffic) -> tuple[bool, str]:
    """Whether an empty result has a good reason, and the reason (or what is wrong)."""
    for metric, braces in SELECTOR.findall(target.query):
        if not prometheus.query(f"count({metric})"):
            if metric.startswith("docservice_db_pool_") and traffic.database == "sqlite":
                return True, "the pools' figures are PostgreSQL's only, and this run is on SQLite"
            if metric == "docservice_ocr_pages_total" and not traffic.scans:
                return True, "no scan was ingested (Tesseract is not installed)"
            return False, f"no series named {metric}: a wrong name, or nothing records it"
        names = prometheus.label_names(metric)
        for label, _, _ in MATCHER.findall(braces):
            if label not in names:
                return False, f"{metric} has no label {label!r}"
        if braces and not prometheus.query(f"count({metric}{braces})"):
            if re.search(r'status\s*=~\s*"5', braces):
                return True, (
                    "no request was answered 5xx, so the numerator is empty "
                    "(Grafana shows No data rather than 0%)"
                )
            return False, f"no series of {metric} matches {braces}"
    return False, "every selector has series, but the expression leaves none"


def check(prometheus: Prometheus, dashboard: dict[str, Any], traffic: Traffic) -> bool:
    """One line per panel target; True when every query ran and every empty one is
    explained."""
    good = True
    for variable in dashboard.get("templating", {}).get("list", []):
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable.get("definition", ""))
        if match:
            metric, label = match.groups()
            values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
            state = "OK" if values else "EMPTY"
            good &= bool(values)
            print(f"{state:5}  variable ${variable['name']}: {len(values)} value(s) {values}")
    targets = dashboard_targets(dashboard)
    several = {t.title for t in targets if sum(o.title == t.title for o in targets) > 1}
    for target in targets:
        title = f"{target.title} ({target.ref_id})" if target.title in several else target.title
        try:
            result = prometheus.query(target.query)
        except PromQLError as error:
            good = False
            print(f"ERROR  {title} | {target.query} | {error}")
            continue
        if result:
            values = [float(sample["value"][1]) for sample in result]
            # NaN (a quantile of no requests) is neither above 0 nor anyone's maximum.
            above = sum(value > 0 for value in values)
            highest = max((value for value in values if value == value), default=math.nan)
            print(
                f"OK     {title} | {target.query} | {len(result)} series, {above} above 0, "
                f"max {highest:.4g}"
            )
            continue
        explained, reason = why_empty(prometheus, target, traffic)
        good &= explained
        verdict = "good reason" if explained else "NOT EXPLAINED"
        print(f"EMPTY  {title} | {target.query} | 0 series | {verdict}: {reason}")
    return good


def main() -> None:
    options = parse_args()
    dashboard = json.loads(options.dashboard.read_text())
    with tempfile.TemporaryDirectory(prefix="check-dashboard-") as scratch_dir:
        scratch = Path(scratch_dir)
        # Settings for child_env, read in this process with the service's own DATA_DIR (the
        # settings make METRICS_DIR under it), never a checkout's .env.
        os.environ.update(
            {"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DATA_DIR": scratch_dir}
        )
        env = child_env(
            DATA_DIR=scratch_dir,
            DATABASE_URL=f"sqlite:///{scratch / 'db.sqlite3'}",
            EMBEDDER="hashing-v1",
            METRICS_ENABLED="true",
        )
        for name in ("METRICS_DIR", "METRICS_ALLOWED_NETWORKS", "METRICS_TOKEN"):
            env.pop(name, None)  # the defaults: DATA_DIR/metrics, loopback, no token
        manage(env, "migrate", "--noinput")
        key = manage(env, "create_api_key", "check-dashboard").strip().splitlines()[-1]
        with running_server(env, workers=2) as base_url, running_worker(env):
            scrape = urllib.parse.urlsplit(base_url).netloc
            with running_prometheus(scratch, scrape) as prometheus:
                wait_for_scrapes(prometheus)
                print(f"service {base_url}, Prometheus {prometheus.base_url}, scraping {scrape}")
                scans = 1 if shutil.which("tesseract") else 0
                drive_traffic(LiveService(base_url, key, scratch, env), scan=bool(scans))
                print(f"traffic sent ({scans} scan(s)); {options.wait:.0f} s of scrapes")
                time.sleep(options.wait)
                good = check(prometheus, dashboard, Traffic(database="sqlite", scans=scans))
    if not good:
        sys.exit("some panels failed: see above")


if __name__ == "__main__":
    main()
