"""Where the tests' files are: the project, and the data files tests read."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MESSY = DATA / "messy_registry.json"
SAMPLE = DATA / "registry.sample.json"  # ../shared/legacy's sample
