"""Idle partitions release the watermark: a silent partition does not hold windows back forever.

The stream goes to partitions 0-2 of a 4-partition topic through the real broker;
partition 3 never gets a record. Once it has been caught up (empty) for
``idle_timeout_s`` it stops holding the watermark back, and every window before
the last is evaluated with exactly the records produced in it. (The last window
closes only when an event at or after its end arrives: event time, not the
clock, closes windows.) Before heartbeats kept a caught-up partition's last
record time, no window of such a stream was ever evaluated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import unique_name
from tests.service.harness import (
    Names,
    create_topics,
    opened,
    producer,
    running_service,
    store_reference,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration


def test_a_silent_partition_does_not_hold_the_windows_back(kafka_broker, tmp_path: Path) -> None:
    stream = Stream(model=unique_name("idle"), windows=4, per_window=120, drift_from=9)
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    config = write_config(
        tmp_path / "idle.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("idle"),
        database_url=url,
        consumer={"idle_timeout_s": 2},
    )
    store_reference(url, config, stream)
    starts = [stream.window_start(i) for i in range(stream.windows - 1)]
    with running_service(config), opened(url) as store:
        client = producer(bootstrap)
        try:
            values = [value for w in range(stream.windows) for _, value in stream.records(w)]
            for i, value in enumerate(values):
                client.send(names.predictions, value=value, partition=i % 3)
            client.flush(timeout=30)
        finally:
            client.close(timeout=5)

        def evaluated() -> list[float]:
            return [s.window_start for s in summaries(store, stream.model)]

        wait_until(
            lambda: evaluated() == starts,
            60,
            lambda: f"windows evaluated: {evaluated()} of {starts}",
            interval=0.3,
        )
        rows = [s.rows for s in summaries(store, stream.model)]
    assert rows == [stream.per_window] * (stream.windows - 1)
