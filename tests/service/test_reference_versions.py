"""Reference versions: stored per model version, in force from the next window, no restart.

A reference stored while the service runs (``driftline reference build
--model-version`` or ``POST /api/models/{model}/reference?model_version=``) is
in force from the first window that starts after the event times already
checkpointed. Every process picks a window's profile version by the window's
start, so the running processes switch at that same window without a restart;
earlier windows keep the version they started with. The second reference here
is built from shifted data, so the windows compared with it drift and the
earlier ones do not.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from detectors.window_result import WindowResult
from monitor.analyses.model import ModelRuntimes, ProfileVersions
from monitor.analyses.reference import next_window_start
from monitor.cli import EXIT_OK, main
from monitor.config.service import ServiceConfig
from monitor.http.app import create_app
from monitor.metrics import Metrics
from monitor.service.run import load_runtimes
from monitor.store import ProgressRow, Store
from monitor.windows import WindowSpec
from tests.servers import unique_name
from tests.service.harness import (
    MonitorPool,
    Names,
    PacedProducer,
    create_topics,
    opened,
    produce,
    running_service,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import T0, Stream, frame

#: Features the second reference (built from the drifted distribution) must flag.
SHIFTED = ("amount", "channel")


def shifted_training(path: Path, seed: int = 7) -> Path:
    """A training file of the drifted distribution: the stream's clean windows drift from it."""
    frame(4000, np.random.default_rng(seed), drift=True).to_csv(path, index=False)
    return path


def results_by_start(store: Store, model: str) -> dict[float, WindowResult]:
    return {r.window_start: r for r in store.window_results(model, limit=1000)}


def drifted(store: Store, model: str, start: float) -> set[str]:
    return {f.feature for f in store.feature_results(model, start) if f.drift}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def build_reference_cli(config: Path, model: str, train: Path, model_version: str) -> int:
    return main(
        [
            "reference",
            "build",
            "--config",
            str(config),
            "--model",
            model,
            "--file",
            str(train),
            "--model-version",
            model_version,
        ]
    )


# --- store and selection -----------------------------------------------------------------


def test_save_profile_round_trips_model_version_and_effective_from(tmp_path: Path) -> None:
    store = Store.connect(f"sqlite:///{tmp_path / 'profiles.db'}")
    try:
        assert store.save_profile("m", b"one") == 1  # the old call still works
        assert store.save_profile("m", b"two", model_version="v8", effective_from=T0) == 2
        rows = store.profiles_since("m", 0)
        assert [(r.version, r.model_version, r.effective_from) for r in rows] == [
            (1, None, None),
            (2, "v8", T0),
        ]
        assert [r.version for r in store.profiles_since("m", 1)] == [2]
        assert store.profiles_since("m", 2) == []
        assert store.profile_model_version("m", 2) == "v8"
        assert store.profile_model_version("m", 1) is None
        assert store.profile_model_version("m", 3) is None  # not stored
        assert store.profile("m", 2) == b"two"

        # From the stored progress: the first window starting after the largest event time.
        spec = WindowSpec(60.0, hop_s=30.0)
        kwargs: dict[str, Any] = {
            "group_id": "g",
            "topic": "predictions",
            "next_window_start": lambda t: next_window_start(spec, t),
        }
        first = store.save_profile_after_progress("n", b"a", model_version="1", **kwargs)
        assert (first.version, first.effective_from) == (1, None)  # nothing consumed yet
        store.checkpoint(
            "g",
            [],
            [
                ProgressRow(
                    topic="predictions", partition=0, next_offset=5, max_event_time=T0 + 70
                ),
                ProgressRow(
                    topic="predictions", partition=1, next_offset=9, max_event_time=T0 + 95
                ),
                ProgressRow(topic="predictions", partition=2, next_offset=0),
            ],
        )
        second = store.save_profile_after_progress("n", b"b", model_version="2", **kwargs)
        assert (second.version, second.model_version) == (2, "2")
        assert second.effective_from == T0 + 120.0  # hop 30 s: the first start after T0 + 95
        assert store.profiles_since("n", 1) == [second]
    finally:
        store.close()


def test_next_window_start_is_strictly_after_and_aligned() -> None:
    tumbling = WindowSpec(60.0)
    assert next_window_start(tumbling, T0) == T0 + 60.0  # a window starting at T0 began already
    assert next_window_start(tumbling, T0 + 59.999) == T0 + 60.0
    assert next_window_start(WindowSpec(60.0, hop_s=20.0), T0 + 21.0) == T0 + 40.0


def test_each_window_and_each_hopping_window_picks_its_own_version(tmp_path: Path) -> None:
    config = ServiceConfig.load(
        write_config(
            tmp_path / "hop.yaml",
            bootstrap="127.0.0.1:9",
            names=Names.fresh(),
            group="g",
            database_url=f"sqlite:///{tmp_path / 'hop.db'}",
            model={"window": {"size": "1m", "hop": "30s", "min_records": 50}},
        )
    )
    stream = Stream(model="credit", windows=1, per_window=10, drift_from=1)
    store_reference(config.database_url(), tmp_path / "hop.yaml", stream)
    with opened(config.database_url()) as store:
        store.save_profile(
            "credit", store.profile("credit", 1) or b"", model_version="2", effective_from=T0 + 30
        )
        runtimes = load_runtimes(config, store)
    assert isinstance(runtimes, ModelRuntimes)
    assert runtimes["credit"].profile_version == 2  # the mapping: the newest
    # A record at T0 + 40 is in the windows starting T0 (version 1) and T0 + 30 (version 2).
    starts = [s for s, _ in runtimes["credit"].window.windows_for(T0 + 40)]
    assert starts == [T0, T0 + 30]
    assert [runtimes.at("credit", s).profile_version for s in starts] == [1, 2]
    versions = runtimes.versions("credit")
    assert isinstance(versions, ProfileVersions)
    assert versions.starts == (-math.inf, T0 + 30)


# --- the HTTP upload ---------------------------------------------------------------------


def test_http_upload_with_model_version_is_in_force_after_the_consumed_data(
    tmp_path: Path,
) -> None:
    names = Names.fresh()
    url = f"sqlite:///{tmp_path / 'api.db'}"
    path = write_config(
        tmp_path / "api.yaml", bootstrap="127.0.0.1:9", names=names, group="g", database_url=url
    )
    config = ServiceConfig.load(path)
    train = frame(500, np.random.default_rng(3), drift=False).to_csv(index=False).encode()
    registry = CollectorRegistry()
    with opened(url) as store:
        app = create_app(config, store, registry, Metrics(registry), broker_check=lambda: None)
        with TestClient(app) as client:
            files = {"file": ("train.csv", train, "text/csv")}
            first = client.post("/api/models/credit/reference", files=files)
            assert first.status_code == 201, first.text
            body = first.json()
            assert body["version"] == 1
            assert "effective_from" not in body  # nothing consumed: from the first window
            assert "model_version" not in body
            store.checkpoint(
                "g",
                [],
                [
                    ProgressRow(
                        topic=names.predictions,
                        partition=0,
                        next_offset=3,
                        max_event_time=T0 + 125.0,
                    )
                ],
            )
            second = client.post(
                "/api/models/credit/reference", params={"model_version": "v8"}, files=files
            )
            assert second.status_code == 201, second.text
            body = second.json()
        assert body["version"] == 2
        assert body["model_version"] == "v8"
        assert datetime.fromisoformat(body["effective_from"]).timestamp() == T0 + 180.0
        assert store.profile_model_version("credit", 2) == "v8"
        runtimes = load_runtimes(config, store)
    assert runtimes.at("credit", T0 + 120.0).profile_version == 1
    assert runtimes.at("credit", T0 + 180.0).profile_version == 2


# --- running services ----------------------------------------------------------------------


@pytest.mark.integration
def test_a_running_service_switches_at_the_next_window_without_a_restart(
    kafka_broker: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = kafka_broker.bootstrap
    # No drift in the stream: compared with the shifted reference 2, its windows drift.
    stream = Stream(model=unique_name("credit"), windows=8, per_window=200, drift_from=8)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    group = unique_name("versions")
    url = f"sqlite:///{tmp_path / 'versions.db'}"
    config = write_config(
        tmp_path / "monitor.yaml", bootstrap=bootstrap, names=names, group=group, database_url=url
    )
    store_reference(url, config, stream)
    train = shifted_training(tmp_path / "shifted.csv")
    switch = 4
    with running_service(config) as service, opened(url) as store:
        produce(bootstrap, names.predictions, [r for i in range(switch) for r in stream.records(i)])
        consumed = switch * stream.per_window
        wait_until(
            lambda: sum(stored_offsets(store, group, names.predictions).values()) >= consumed,
            60,
            "the first windows were not consumed",
            interval=0.1,
        )
        capsys.readouterr()
        assert build_reference_cli(config, stream.model, train, "2") == EXIT_OK
        printed = capsys.readouterr().out
        produce(
            bootstrap,
            names.predictions,
            [r for i in range(switch, stream.windows) for r in stream.records(i)],
        )
        wait_until(
            lambda: len(summaries(store, stream.model)) >= stream.windows - 1,
            90,
            lambda: f"evaluated {len(summaries(store, stream.model))} windows",
            interval=0.2,
        )
        results = results_by_start(store, stream.model)
        stored = store.profiles_since(stream.model, 1)
        # Learnt by the running process itself: the service object was never rebuilt.
        known = [r.profile_version for r in service.runtimes.versions(stream.model).runtimes]
        flags = {i: drifted(store, stream.model, stream.window_start(i)) for i in range(8)}
    assert known == [1, 2]
    assert [(r.version, r.model_version) for r in stored] == [(2, "2")]
    assert stored[0].effective_from == stream.window_start(switch)
    assert "version 2" in printed
    assert "model version: 2" in printed
    assert iso(stream.window_start(switch)) in printed
    for i in range(stream.windows - 1):
        result = results[stream.window_start(i)]
        expected = 2 if i >= switch else 1
        assert result.profile_version == expected, f"window {i}"
        assert result.rows == stream.per_window, f"window {i}"
        assert result.rows_other_profiles == 0
        if expected == 1:
            assert not flags[i] & set(SHIFTED), f"window {i} drifts from reference 1: {flags[i]}"
        else:
            assert set(SHIFTED) <= flags[i], f"window {i} on reference 2 flags {flags[i]}"


ASSIGNED = re.compile(r"monitor\.streaming\.ingest: assigned (\S+)/(\d+) ")


@pytest.mark.integration
def test_two_processes_switch_at_the_same_window_mid_stream(
    kafka_broker: Any, postgres_url: str, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model=unique_name("credit"), windows=10, per_window=200, drift_from=10)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    group = unique_name("versions")
    config = write_config(
        tmp_path / "monitor.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=postgres_url,
    )
    store_reference(postgres_url, config, stream)
    train = shifted_training(tmp_path / "shifted.csv")
    procs = [monitors.new(config, f"monitor-{i}").start() for i in range(2)]

    def owned() -> list[set[int]]:
        found = []
        for proc in procs:
            hits = [int(p) for t, p in ASSIGNED.findall(proc.log()) if t == names.predictions]
            found.append(set(hits))
        return found

    wait_until(
        lambda: all(owned()), 60, lambda: f"not both assigned\n{monitors.logs()}", interval=0.2
    )
    records = [r for i in range(stream.windows) for r in stream.records(i)]
    size = stream.per_window // 2
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    with opened(postgres_url) as store:

        def store_midway(index: int) -> None:
            if index == 8:  # 4 of 10 windows produced; the processes are still consuming
                wait_until(
                    lambda: sum(stored_offsets(store, group, names.predictions).values()) > 0,
                    30,
                    "nothing checkpointed",
                )
                assert build_reference_cli(config, stream.model, train, "2") == EXIT_OK

        producer = PacedProducer(
            bootstrap, names.predictions, chunks, 0.25, before_chunk=store_midway
        ).start()
        producer.join(90)
        wait_until(
            lambda: len(summaries(store, stream.model)) >= stream.windows - 1,
            90,
            lambda: f"evaluated {len(summaries(store, stream.model))}\n{monitors.logs()}",
            interval=0.2,
        )
        results = results_by_start(store, stream.model)
        stored = store.profiles_since(stream.model, 1)
        flags = {
            i: drifted(store, stream.model, stream.window_start(i))
            for i in range(stream.windows - 1)
        }
    assert all(proc.alive for proc in procs), monitors.logs()  # never restarted
    assert [(r.version, r.model_version) for r in stored] == [(2, "2")]
    effective_from = stored[0].effective_from
    assert effective_from is not None
    switch = (effective_from - T0) / 60.0
    assert switch == int(switch), "in force from a window start"
    assert 1 <= switch <= stream.windows - 2, f"switch at window {switch}"
    for i in range(stream.windows - 1):
        result = results[stream.window_start(i)]
        expected = 2 if stream.window_start(i) >= effective_from else 1
        # Every partition's partial on the same version: both processes switched here.
        assert result.profile_version == expected, f"window {i}\n{monitors.logs()}"
        assert result.rows == stream.per_window, f"window {i}"
        assert result.rows_other_profiles == 0, f"window {i}"
        if expected == 1:
            assert not flags[i] & set(SHIFTED), f"window {i} drifts from reference 1"
        else:
            assert set(SHIFTED) <= flags[i], f"window {i} on reference 2 flags {flags[i]}"
