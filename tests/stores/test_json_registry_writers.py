"""The JSON registry under several writers, killed writers and damaged files."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from registry.backends.json_registry import JsonFileRegistry
from registry.exceptions import RegistryUnavailable
from registry.legacy import dump_legacy_file
from tests.support.paths import ROOT
from tests.support.processes import child_env
from tests.support.registry_writer import record


def writer(path: Path, first: int, count: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.registry_writer",
            str(path),
            str(first),
            str(count),
            *extra,
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path):
    path = tmp_path / "registry.json"
    processes = [writer(path, first=i * 1000, count=60) for i in range(4)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    ids = {item["fileId"] for item in orjson.loads(path.read_bytes())}
    expected = {record(i * 1000 + n).file_id for i in range(4) for n in range(60)}
    assert ids == expected
    assert JsonFileRegistry(path).count() == 240


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_a_valid_file(tmp_path: Path):
    path = tmp_path / "registry.json"
    # A registry large enough that each rewrite takes a while, so kills land mid-write.
    path.write_bytes(dump_legacy_file([record(n) for n in range(10_000)]))
    previous = 10_000
    mid_write_kills = 0
    rng = random.Random(7)
    attempts = 0
    # Kill at random points until several kills have landed inside a write.
    while mid_write_kills < 3 and attempts < 40:
        attempts += 1
        process = writer(path, 100_000 * attempts, 10**6, "--forever")
        assert process.stdout.readline().strip() == "first write done"
        if attempts % 2:
            time.sleep(rng.uniform(0, 0.4))  # anywhere in the loop
        else:
            # Inside a write: as soon as its temporary file shows up, however fast the
            # machine (random sleeps alone once missed every write on a busy CI host).
            deadline = time.monotonic() + 5
            while not list(tmp_path.glob(".registry.json.*.tmp")) and time.monotonic() < deadline:
                time.sleep(0.0005)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        mid_write_kills += bool(list(tmp_path.glob(".registry.json.*.tmp")))
        items = orjson.loads(path.read_bytes())  # parses: never truncated
        assert isinstance(items, list)
        assert len(items) >= previous
        previous = len(items)
        assert JsonFileRegistry(path).count() == len(items)
    print("kills that landed mid-write:", mid_write_kills)
    assert mid_write_kills > 0, "no kill landed mid-write: the test proved nothing"
    # The next writer clears the temporaries a killed writer left behind.
    JsonFileRegistry(path).upsert(record(10**9))
    assert list(tmp_path.glob(".registry.json.*.tmp")) == []


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'[{"fileId": "a", "filename": "x", "createdAt": 1', "is not valid JSON"),
        (b"", "is empty"),
        (b'{"fileId": "a"}', "holds a JSON dict, expected an array"),
        (b"\xef\xbb\xbf[]", "byte-order mark"),
        ('[{"filename": "caf\u00e9"}]'.encode("latin-1"), "is not UTF-8"),
        (b'[{"filename": "x", "createdAt": 1}]', "record 0 is invalid (fileId is missing)"),
    ],
)
def test_a_damaged_file_is_a_clear_error_never_an_empty_registry(tmp_path: Path, content, reason):
    path = tmp_path / "registry.json"
    path.write_bytes(content)
    registry = JsonFileRegistry(path)
    with pytest.raises(RegistryUnavailable) as excinfo:
        registry.count()
    assert reason in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    with pytest.raises(RegistryUnavailable):
        registry.upsert(record(1))
    assert path.read_bytes() == content  # a failed write never replaces the file


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "registry.json"
    path.mkdir()  # reading a directory fails like an unreadable file, also as root
    with pytest.raises(RegistryUnavailable) as excinfo:
        JsonFileRegistry(path).list()
    assert "cannot be read" in str(excinfo.value)


def test_a_missing_file_is_an_empty_registry_created_on_first_write(tmp_path: Path):
    path = tmp_path / "sub" / "registry.json"
    registry = JsonFileRegistry(path)
    assert registry.count() == 0
    registry.upsert(record(1))
    assert orjson.loads(path.read_bytes())[0]["fileId"] == record(1).file_id


def test_another_process_change_is_seen_by_a_cached_reader(tmp_path: Path):
    path = tmp_path / "registry.json"
    reader = JsonFileRegistry(path)
    reader.upsert(record(1))
    assert reader.count() == 1
    process = writer(path, first=2, count=3)
    process.communicate(timeout=60)
    assert reader.count() == 4
