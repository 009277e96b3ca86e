"""Exactly-once windows: ``driftline run`` SIGKILLed at random points gives the clean results.

Two ``driftline run`` subprocesses consume the same paced, seeded stream
(4 partitions, drift from a known window on) in two consumer groups, each
into its own SQLite file: one runs undisturbed, the other is SIGKILLed at
seeded random moments while records flow and restarted each time.
Checkpoints every 0.2 s make the kills land before, between and during
checkpoint transactions (and window evaluations). The killed run must store
exactly the results of the clean one, and every window's row count must be
the number of records produced in it: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.store.models import DONE, WindowClaim
from tests.servers import unique_name
from tests.service.harness import (
    JOINT_DRIFT,
    Monitor,
    MonitorPool,
    Names,
    PacedProducer,
    assert_same_results,
    create_topics,
    opened,
    snapshot,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

SEED = 20261122
KILLS = 3
# 12 windows of 240 records, produced a half window at a time; the last window only
# moves the watermark past the others.
STREAM = Stream(model="credit", windows=12, per_window=240, drift_from=5)
CHUNKS_PER_WINDOW = 2
PACE_S = 0.4


def test_sigkill_at_random_points_stores_the_uninterrupted_results(
    kafka_broker, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(STREAM.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    urls = {run: f"sqlite:///{tmp_path / f'{run}.db'}" for run in ("clean", "killed")}
    groups = {run: unique_name(run) for run in urls}
    procs: dict[str, Monitor] = {}
    for run, url in urls.items():
        config = write_config(
            tmp_path / f"{run}.yaml",
            bootstrap=bootstrap,
            names=names,
            group=groups[run],
            database_url=url,
            model=JOINT_DRIFT,
        )
        store_reference(url, config, STREAM)
        procs[run] = monitors.new(config, run).start()

    records = [r for i in range(STREAM.windows) for r in STREAM.records(i)]
    size = STREAM.per_window // CHUNKS_PER_WINDOW
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    kills: list[int] = []  # stored offsets (records) at each kill
    killed_enough = threading.Condition()

    def gate(chunk: int) -> None:
        # Hold the stream back until enough kills happened: every kill lands mid-stream.
        needed = min(KILLS, chunk * (KILLS + 1) // len(chunks))
        with killed_enough:
            if not killed_enough.wait_for(lambda: len(kills) >= needed, timeout=60):
                raise AssertionError(f"chunk {chunk} waited 60 s for kill {needed}")

    paced = PacedProducer(bootstrap, names.predictions, chunks, PACE_S, before_chunk=gate).start()
    rng = random.Random(SEED)
    killed = procs["killed"]
    with opened(urls["killed"]) as store:

        def consumed() -> int:
            return sum(stored_offsets(store, groups["killed"], names.predictions).values())

        try:
            while len(kills) < KILLS:
                before = consumed()
                wait_until(
                    lambda: consumed() > before,  # noqa: B023 -- called within this iteration
                    60,
                    lambda: f"no checkpoint after restart {killed.starts}\n{monitors.logs()}",
                    interval=0.02,
                )
                time.sleep(rng.uniform(0.0, 0.5))  # before, during or after a checkpoint
                killed.kill()
                at = consumed()
                with killed_enough:
                    kills.append(at)
                    killed_enough.notify_all()
                killed.start()
            paced.join(120)
        finally:
            paced.stop()

        total = len(records)
        assert all(at < total for at in kills), f"a kill landed after the stream: {kills}"
        asserted = [STREAM.window_start(i) for i in range(STREAM.windows - 1)]

        def finished(url: str, group: str) -> bool:
            with opened(url) as s:
                offsets = stored_offsets(s, group, names.predictions)
                starts = [w.window_start for w in summaries(s, STREAM.model)]
            return sum(offsets.values()) == total and starts == asserted

        wait_until(
            lambda: all(finished(urls[r], groups[r]) for r in urls),
            60,
            lambda: f"the runs did not finish\n{monitors.logs()}",
            interval=0.2,
        )
        for proc in procs.values():
            assert proc.alive, monitors.logs()
            assert proc.stop() == 0, monitors.logs()

        killed_results = snapshot(store, STREAM.model)
        with store.engine.connect() as connection:
            claims = connection.execute(
                select(WindowClaim.window_start, WindowClaim.status).where(
                    WindowClaim.model == STREAM.model
                )
            ).all()
    with opened(urls["clean"]) as clean_store:
        clean_results = snapshot(clean_store, STREAM.model)

    # Nothing lost or double-counted: every window holds exactly the records produced in it.
    rows = {
        run: [results[STREAM.window_start(i)]["rows"] for i in range(STREAM.windows - 1)]
        for run, results in (("killed", killed_results), ("clean", clean_results))
    }
    assert rows == {run: [STREAM.per_window] * (STREAM.windows - 1) for run in rows}, (
        f"rows per window differ from the produced ones (kills at {kills})"
    )
    assert {w["status"] for w in killed_results.values()} == {"ok"}
    # Joint drift ran on every window: equal results below mean equal row samples.
    assert all("methods" in w["details"]["multivariate"] for w in killed_results.values())
    assert sorted(claims) == [(start, DONE) for start in asserted]
    assert_same_results(killed_results, clean_results)
    # The restarts really happened mid-stream, at different points.
    assert killed.starts == KILLS + 1
    assert len(set(kills)) == KILLS, kills
