"""tests/passes.py names real tests: a module, class or test it lists that does not exist
(renamed, moved) would leave the tests it meant running in every pass, unnoticed."""

from __future__ import annotations

import ast

import pytest

from tests.passes import ALL, PASSES, passes_of, slow_first
from tests.support.paths import ROOT


def names_in(path: str) -> set[str]:
    """Every class and function of a test module, and each method as Class::method."""
    tree = ast.parse((ROOT / path).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}::{item.name}" for item in node.body if hasattr(item, "name"))
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return names


@pytest.mark.parametrize("entry", sorted(PASSES))
def test_every_entry_names_a_test_module_class_or_test_that_exists(entry: str):
    path, _, name = entry.partition("::")
    assert (ROOT / path).is_file(), f"{path} does not exist"
    assert not name or name in names_in(path), f"{path} has no {name}"
    assert PASSES[entry] and set(PASSES[entry]) <= set(ALL)


def test_the_longest_entry_decides_and_an_unlisted_test_runs_everywhere():
    background = "tests/jobs/test_background_ingest.py"
    assert passes_of(f"{background}::TestQueued::test_the_same_bytes_again_get_the_same_job") == (
        "sqlite",
        "postgres",
    )
    assert (
        passes_of(f"{background}::TestRun::test_the_job_succeeds_and_the_document_is_answerable")
        == ALL
    )
    assert passes_of(f"{background}::TestFaults::test_two_workers_never_run_the_same_job") == (
        "postgres",
    )
    assert passes_of("tests/api/test_ingest_file.py::test_anything") == ALL
    assert slow_first(f"{background}::TestFaults::x") < slow_first("tests/api/test_ask.py::x")
