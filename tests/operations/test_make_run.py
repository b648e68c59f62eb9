"""What a new user meets starting the service (issue 24): what `make run` installs, the
settings gunicorn reads from `.env`, and a first request that does not wait for the
model."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from tests.support.live import LiveService
from tests.support.paths import ROOT
from tests.support.processes import child_env, child_process, free_port, run_manage, running_server


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


def gunicorn_settings(env: dict[str, str]) -> dict[str, object]:
    """What gunicorn.conf.py sets under `env`, read as gunicorn reads it."""
    script = (
        "import json, runpy; g = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: g[k] for k in ('bind', 'workers', 'timeout', "
        "'forwarded_allow_ips')}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


GUNICORN_SETTINGS = ("BIND", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "TRUSTED_PROXIES")


def test_gunicorn_reads_its_settings_from_dot_env_and_the_environment_wins(tmp_path):
    dot_env = tmp_path / ".env"
    dot_env.write_text(
        "BIND=127.0.0.1:8123\nWEB_CONCURRENCY=3\nGUNICORN_TIMEOUT=45\nTRUSTED_PROXIES=10.0.0.5\n"
    )
    env = {k: v for k, v in child_env(ENV_FILE=str(dot_env)).items() if k not in GUNICORN_SETTINGS}
    assert gunicorn_settings(env) == {
        "bind": "127.0.0.1:8123",
        "workers": 3,
        "timeout": 45,
        "forwarded_allow_ips": "10.0.0.5",
    }
    assert gunicorn_settings({**env, "BIND": "127.0.0.1:8124"})["bind"] == "127.0.0.1:8124"
    assert gunicorn_settings({**env, "ENV_FILE": ""})["bind"] == "127.0.0.1:8000"


def test_a_server_started_with_only_a_dot_env_serves_where_it_says(tmp_path):
    port = free_port()
    dot_env = tmp_path / ".env"
    dot_env.write_text(
        f"BIND=127.0.0.1:{port}\nWEB_CONCURRENCY=1\n"
        f"DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\nDATA_DIR={tmp_path}\n"
    )
    env = {
        k: v
        for k, v in child_env(ENV_FILE=str(dot_env)).items()
        if k not in (*GUNICORN_SETTINGS, "DATABASE_URL", "DATA_DIR")
    }
    assert run_manage("migrate", "-v0", env=env).returncode == 0
    gunicorn = ["-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"]
    with child_process(gunicorn, env, None) as server:
        deadline = time.monotonic() + 60
        while True:
            assert server.process.poll() is None, server.output()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "nothing answered on the .env's BIND"
                time.sleep(0.2)


def test_a_web_worker_loads_its_model_before_it_says_it_is_ready(tmp_path):
    env = child_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DATA_DIR=str(tmp_path),
        EMBEDDER="minilm",
        API_KEYS_REQUIRED="false",
        WARM_UP="true",
    )
    assert run_manage("migrate", "-v0", env=env).returncode == 0
    log: list[str] = []
    with running_server(env, workers=1, log=log) as base:
        service = LiveService(base, "", tmp_path, env)
        answers = []
        deadline = time.monotonic() + 120
        while not answers or answers[-1][0] != 200:
            assert time.monotonic() < deadline, answers[-3:]
            answers.append(service.call("GET", "/health", with_key=False))
            time.sleep(0.1)
        # A load balancer probing it meanwhile was told to wait.
        status, body = answers[0]
        assert (status, body["ok"], body["db"], body["status"]) == (503, False, True, "starting")
        assert answers[-1][1]["ok"] is True and "status" not in answers[-1][1]
        status, answer = service.post_json("/ask", {"q": "Where do the tides come from?"})
        assert status == 200, answer
    loads = [n for n, line in enumerate(log) if "Loading SentenceTransformer model" in line]
    ready = [n for n, line in enumerate(log) if "ingest.warmup" in line and "ready in" in line]
    asked = [n for n, line in enumerate(log) if "POST /ask 200" in line]
    assert len(loads) == 1 and len(ready) == 1 and len(asked) == 1, log[-20:]
    assert loads[0] < ready[0] < asked[0]  # the question found the model loaded
