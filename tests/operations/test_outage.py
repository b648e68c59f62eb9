"""common/db/outage.py's record of the database being down, with real connections: to a port
nobody listens on (refused at once) and to a listener that never answers (connecting
hangs until its timeout)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from common.db.outage import DatabaseUnavailable, Outage
from tests.support.processes import Postgres, free_port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def connect_to(port: int, timeout: int = 3):
    return lambda: psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=timeout
    ).close()


def down(outage: Outage, port: int) -> None:
    with pytest.raises(psycopg.OperationalError) as refused:
        connect_to(port)()
    outage.failed(refused.value)
    assert outage.down


def test_while_down_every_caller_tries_a_connection_and_the_first_success_ends_it(
    postgres: Postgres,
):
    outage, port = Outage(), free_port()
    down(outage, port)
    for _ in range(3):  # refused at once, each time: not held back for a second
        with pytest.raises(DatabaseUnavailable, match="has not answered"):
            outage.check(connect_to(port))
    outage.check(lambda: psycopg.connect(postgres.url).close())  # a PostgreSQL answers
    assert not outage.down
    outage.check(connect_to(port))  # up: no attempt made, whatever the probe would say


def test_callers_arriving_while_connecting_hangs_are_refused_without_waiting_it_out(
    silent_port: int,
):
    outage = Outage()
    down(outage, free_port())
    outcomes: dict[str, tuple[str, float]] = {}

    def caller(name: str) -> None:
        started = time.monotonic()
        try:
            outage.check(connect_to(silent_port, timeout=4))
            outcomes[name] = ("served", time.monotonic() - started)
        except DatabaseUnavailable:
            outcomes[name] = ("refused", time.monotonic() - started)

    prober = threading.Thread(target=caller, args=("prober",))
    prober.start()
    time.sleep(0.2)
    caller("joiner")  # waits for the prober's attempt at most JOIN_WAIT (0.5 s)
    prober.join()
    assert outcomes["joiner"][0] == outcomes["prober"][0] == "refused", outcomes
    # Neither waits out the attempt's 4 s: each is refused after JOIN_WAIT at most.
    assert max(took for _, took in outcomes.values()) < 1.5, outcomes


def test_an_attempt_hung_on_a_dead_link_does_not_hold_back_the_first_one_after_it(
    silent_port: int, postgres: Postgres
):
    """An attempt that hangs (its packets lost, as on a link taken down) is left to end
    on its own: the next caller starts a fresh attempt and is served as soon as the
    database answers, and the hung attempt's failure, when it comes, is old news."""
    outage = Outage()
    down(outage, free_port())
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        outage.check(connect_to(silent_port, timeout=3))  # hangs 3 s in its own thread
    assert time.monotonic() - started < 1.5  # refused after JOIN_WAIT, not its 3 s
    time.sleep(0.6)  # past JOIN_WAIT: the hung attempt is no one's to wait for
    started = time.monotonic()
    outage.check(lambda: psycopg.connect(postgres.url).close())  # "the link is back"
    assert time.monotonic() - started < 1.0 and not outage.down
    time.sleep(3)  # the hung attempt has failed meanwhile, after the success
    assert not outage.down
    outage.check(connect_to(free_port()))  # up: no attempt made


def test_db_fail_fast_false_leaves_psycopg_pool_to_wait_out_its_timeout(settings):
    """DB_FAIL_FAST=false: Django's own pool (psycopg-pool's), whose request waits its
    timeout for a database that refuses every connection; no outage is recorded."""
    from django.db.utils import ConnectionHandler
    from psycopg_pool import ConnectionPool, PoolTimeout

    from common.db.outage import outage

    settings.DB_FAIL_FAST = False
    database = {
        "ENGINE": "common.db.postgresql",
        "HOST": "127.0.0.1",
        "PORT": free_port(),
        "NAME": "postgres",
        "USER": "postgres",
        "OPTIONS": {"pool": {"min_size": 0, "max_size": 1, "timeout": 1.5}},
    }
    # An alias of its own: Django keeps one pool per alias for the whole process.
    wrapper = ConnectionHandler({"default": database, "unreachable": database})["unreachable"]
    try:
        assert type(wrapper.pool) is ConnectionPool
        started = time.monotonic()
        with pytest.raises(PoolTimeout):  # psycopg-pool's own answer
            wrapper.connect()
        assert time.monotonic() - started >= 1.4  # waited, not refused at once
        assert not outage.down
    finally:
        wrapper.close_pool()
