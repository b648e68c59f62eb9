"""Fuzzing from the service's own OpenAPI schema (issue 13): schemathesis generates
requests for every operation, with a valid key, against the service under gunicorn.
No input may cause a 5xx, and every response must be one the schema documents, in the
shape it documents. Bounded for CI: a fixed seed and a few examples per operation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows

EXAMPLES_PER_OPERATION = 15


def test_no_input_breaks_the_service_or_its_schema(live_service, tmp_path: Path):
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            live_service.base_url + "/openapi.json",
            "--header",
            f"X-API-Key: {live_service.api_key}",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "1",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cassettes and reports, if any, stay out of the project
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert " passed" in report and "Tested: 11" in report, report[-3000:]
