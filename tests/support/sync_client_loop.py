"""A process that reaches the database only through Django's sync path, for the database
restart tests: Django's test client in a loop, as a management command's loop or the
admin's views would. The test client never closes its connection between requests (it
turns off Django's request_started handler), so the process holds one connection for its
whole life, as a long-running command does.

python -m tests.support.sync_client_loop API_KEY SECONDS OUTPUT

Writes one JSON line per request to OUTPUT as it comes back: when it started (the wall
clock, which the test compares with when the database came back), what it was, its
status and how long it took. The first line is {"ready": true}, once a first round of
requests has loaded the model.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import django
import orjson


def main() -> None:
    key, seconds, output = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    client = Client(headers={"X-API-Key": key}, raise_request_exception=False)

    def ingest(n: int) -> int:
        note = SimpleUploadedFile(f"note-{n}.txt", f"Note {n}: the tide turns at noon.".encode())
        return client.post("/ingest/file", {"file": note}).status_code

    def ask(n: int) -> int:
        question = {"q": "When does the tide turn?"}
        return client.post("/ask", question, "application/json").status_code

    def documents(n: int) -> int:
        return client.get("/documents").status_code

    def delete(n: int) -> int:
        return client.post("/delete", {"fileId": f"gone-{n}"}, "application/json").status_code

    calls = [ingest, ask, documents, delete]
    with output.open("ab", buffering=0) as out:
        for n, call in enumerate(calls):
            call(n)  # a first round: the model loaded, a connection held
        out.write(orjson.dumps({"ready": True}) + b"\n")
        end, n = time.monotonic() + seconds, len(calls)
        while time.monotonic() < end:
            call = calls[n % len(calls)]
            at, started = time.time(), time.monotonic()
            status = call(n)
            took = time.monotonic() - started
            line = {"at": at, "call": call.__name__, "status": status, "took": took}
            out.write(orjson.dumps(line) + b"\n")
            n += 1
            time.sleep(0.05)


if __name__ == "__main__":
    main()
