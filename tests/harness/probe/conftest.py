"""Fixtures for the runtime probe tests: the tiny fixture scripts and a cache of their probe reports."""

import dataclasses
from pathlib import Path

import pytest

from harness.run.probe import ProbeOptions, probe_path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[3]
SMALL = ProbeOptions(timeout=240, val_tokens=4097)  # 4,096 targets: eight 512-token TTT chunks


@pytest.fixture(scope="session")
def probed():
    """Probe a fixture script (or a repo path) once per session and return its Report; keyword arguments override
    ProbeOptions fields (e.g. cpu_compat=False)."""
    cache = {}

    def run(name: str, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            path = REPO / name if "/" in name else FIXTURES / f"{name}.py"
            cache[key] = probe_path(path, dataclasses.replace(SMALL, **options))
        return cache[key]

    return run


@pytest.fixture()
def fixtures_dir() -> Path:
    return FIXTURES
