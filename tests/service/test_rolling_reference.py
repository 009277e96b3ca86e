"""A rolling reference: each window compared with the previous N windows, through ``replay``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.analyses.reference import build_profile
from monitor.config.service import ServiceConfig
from monitor.service.replay import replay
from monitor.store import Store
from tests.service.streams import DRIFTED, Stream

CONFIG = """
database:
  url: sqlite:///{db}
models:
  - name: credit
    window: {{size: 1m, allowed_lateness: 0s, min_records: 50}}
    rolling_reference: {rolling}
"""


def replayed(tmp_path: Path, stream: Stream, rolling: int | None) -> dict[int, set[str]]:
    """Replay ``stream`` with the given rolling reference; return drifted features per window."""
    folder = tmp_path / f"rolling-{rolling}"
    folder.mkdir()
    path = folder / "service.yaml"
    path.write_text(
        textwrap.dedent(CONFIG).format(
            db=folder / "d.db", rolling="null" if rolling is None else rolling
        )
    )
    config = ServiceConfig.load(path)
    store = Store.connect(config.database_url())
    store.save_profile(
        "credit", build_profile(config.model("credit"), stream.reference()).to_bytes()
    )
    store.close()
    log = folder / "log.jsonl"
    log.write_bytes(
        b"\n".join(value for i in range(stream.windows) for _, value in stream.records(i))
    )
    result = replay(config, log)
    return {
        round((o.window_start - stream.window_start(0)) / 60): (
            {f.name for f in o.drift.features if f.drift} if o.drift else set()
        )
        for o in result.windows
    }


def test_rolling_reference_follows_the_stream(tmp_path):
    """With the profile, drift persists; with the last 2 windows as reference it is a step."""
    stream = Stream(model="credit", windows=7, per_window=400, drift_from=3)
    against_profile = replayed(tmp_path, stream, None)
    rolling = replayed(tmp_path, stream, 2)
    assert all(against_profile[i] == set(DRIFTED) for i in range(3, 7))
    # Windows 0-1 have no 2 previous windows: compared with the profile, no drift.
    assert rolling[0] == rolling[1] == set()
    # Window 3 is the first drifted one: its reference (windows 1-2) is clean, so it drifts.
    assert rolling[3] == set(DRIFTED)
    # From window 5 on the reference (windows 3-4) has drifted too: nothing moves.
    assert rolling[5] == rolling[6] == set()


def test_rolling_reference_is_validated(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(CONFIG).format(db=tmp_path / "d.db", rolling=0))
    with pytest.raises(ValueError, match="rolling_reference"):
        ServiceConfig.load(path)
