"""Fixtures of the service integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import MonitorPool


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[MonitorPool]:
    """Starts ``driftline run`` subprocesses; every one of them is SIGKILLed after the test."""
    pool = MonitorPool(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()
