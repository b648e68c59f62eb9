"""Management commands as an operator runs them: in this process, or at a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from io import StringIO

from django.core.management import CommandError, call_command

from tests.support.paths import ROOT


def run_command(name: str, *args: str) -> tuple[str, str | None]:
    """A management command's stdout, and its CommandError message when it failed."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def run_import(*args: str) -> tuple[str, str | None]:
    return run_command("import_registry", *args, "--no-progress")


def run_on_a_terminal(
    args: list[str], env: dict[str, str], *, stdout_too: bool = False
) -> tuple[str, str]:
    """Run manage.py with stderr (and stdout, `stdout_too`: as someone at a terminal runs
    it) on a pseudo-terminal; return stdout if it was not, and what the terminal showed."""
    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO once the child has closed its end
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            stdout=follower if stdout_too else subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=60,
        )
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert result.returncode == 0
    return result.stdout or "", b"".join(shown).decode()
