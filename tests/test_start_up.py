"""What a new user meets starting the service (issue 24): what `make run` installs, the
settings gunicorn reads from `.env`, and a first request that does not wait for the
model."""

from __future__ import annotations

import subprocess

from tests.helpers import ROOT


def planned(target: str) -> str:
    """What `make TARGET` would run on a fresh checkout (a dry run, every step)."""
    done = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_what_the_service_needs_and_not_the_test_tools():
    plan = planned("run")
    assert "-r requirements.txt" in plan
    assert "requirements-dev.txt" not in plan
    assert "gunicorn config.asgi:application" in plan and "db_worker" in plan


def test_make_test_installs_the_test_tools_too():
    plan = planned("test-sqlite")
    assert "-r requirements.txt" in plan and "-r requirements-dev.txt" in plan
