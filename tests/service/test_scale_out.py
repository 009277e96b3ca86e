"""Scale-out: several ``driftline run`` processes in one group share a PostgreSQL database.

Two monitor subprocesses, then a third, consume one 4-partition topic in one
consumer group and write to the same PostgreSQL database; partway through,
one of the three is SIGKILLed and the others take over its partitions. Every
window must be evaluated exactly once (one done claim, one evaluation in all
the processes' logs) from the merge of every partition's partial, and the
stored results must equal a single-process run: nothing lost or counted twice.

The zombie-writer hazard -- a member evicted from the group while alive
checkpointing its stale state over the newer state of the partition's new
owner -- is fenced: a checkpoint is refused unless the stored offset is the
one its writer last loaded or wrote. Tested directly, on the store and on the
ingestor.
"""

from __future__ import annotations

import random
import re
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from monitor.analyses.model import ModelRuntime
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.records import PredictionRecord, decode_prediction
from monitor.service.run import load_runtimes
from monitor.store import PartialRow, ProgressRow, Store
from monitor.store.models import DONE, WindowClaim
from monitor.store.repository import StaleCheckpointError
from monitor.streaming.ingest import Ingestor
from monitor.streaming.partials import sketch_to_bytes
from monitor.streaming.sketching import sketch_records
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
    reference_results,
    snapshot,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

SEED = 4242
EVALUATED = re.compile(
    r"monitor\.streaming\.evaluate: window (\S+) \[([0-9.]+), [0-9.]+\): \d+ rows"
)
ASSIGNED = "monitor.streaming.ingest: assigned {topic}/{partition} "
NEWLY_ASSIGNED = re.compile(r"Setting newly assigned partitions \{(.*)\}")


def evaluations(pool: MonitorPool, model: str) -> Counter[float]:
    """How many times each window of ``model`` was evaluated, over every process's log."""
    found: Counter[float] = Counter()
    for monitor in pool.monitors:
        for name, start in EVALUATED.findall(monitor.log()):
            if name == model:
                found[float(start)] += 1
    return found


def owned_partitions(monitor: Monitor, topic: str) -> set[int]:
    """The partitions of ``topic`` in the process's last assignment (from its log)."""
    assignments = NEWLY_ASSIGNED.findall(monitor.log())
    assert assignments, f"{monitor.log_path.name} was never assigned partitions"
    pattern = rf"topic='{re.escape(topic)}', partition=(\d+)"
    return {int(p) for p in re.findall(pattern, assignments[-1])}


def test_two_then_three_processes_with_one_killed_equal_one_process(
    kafka_broker, postgres_url: str, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model=unique_name("credit"), windows=12, per_window=200, drift_from=5)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    group = unique_name("scale")
    config = write_config(
        tmp_path / "monitor.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=postgres_url,
        # Shorter than a takeover (session timeout + rejoin, ~3 s): the victim's partitions
        # must hold the watermark back because nobody attends them, not because of timing.
        consumer={"idle_timeout_s": 2},
        model=JOINT_DRIFT,
    )
    store_reference(postgres_url, config, stream)
    records = [r for i in range(stream.windows) for r in stream.records(i)]
    size = stream.per_window // 2
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    total = len(records)
    rng = random.Random(SEED)
    first = [monitors.new(config, f"monitor-{i}").start() for i in range(2)]

    def joined(procs: list[Monitor]) -> bool:
        return all(f"assigned {names.predictions}/" in m.log() for m in procs)

    wait_until(lambda: joined(first), 60, lambda: f"no assignment\n{monitors.logs()}")

    # Phase 1: two processes, the first 8 of 24 half-windows.
    with opened(postgres_url) as store:
        phase1 = PacedProducer(bootstrap, names.predictions, chunks[:8], 0.25).start()
        phase1.join(60)
        wait_until(
            lambda: len(summaries(store, stream.model)) >= 3,
            30,
            lambda: f"two processes evaluated nothing\n{monitors.logs()}",
            interval=0.2,
        )
        # Phase 2: a third process joins (a rebalance), then one of the three is killed.
        third = monitors.new(config, "monitor-2").start()
        everyone = [*first, third]
        wait_until(lambda: joined(everyone), 60, lambda: f"no assignment\n{monitors.logs()}")
        victim = rng.choice(everyone)
        survivors = [m for m in everyone if m is not victim]
        killed: dict[str, Any] = {}

        def kill_midway(index: int) -> None:
            if index == 6:  # 14 of 24 half-windows produced
                killed["partitions"] = owned_partitions(victim, names.predictions)
                killed["log_sizes"] = [len(m.log()) for m in survivors]
                killed["consumed"] = sum(stored_offsets(store, group, names.predictions).values())
                victim.kill()

        phase2 = PacedProducer(
            bootstrap, names.predictions, chunks[8:], 0.25, before_chunk=kill_midway
        ).start()
        phase2.join(60)
        assert not victim.alive
        assert killed["partitions"], "the victim owned no partition"
        assert killed["consumed"] < total

        evaluated = [stream.window_start(i) for i in range(stream.windows - 1)]

        def finished() -> bool:
            offsets = stored_offsets(store, group, names.predictions)
            starts = [w.window_start for w in summaries(store, stream.model)]
            return sum(offsets.values()) == total and starts == evaluated

        wait_until(finished, 60, lambda: f"did not finish\n{monitors.logs()}", interval=0.2)
        # The survivors took over every partition of the victim.
        for partition in killed["partitions"]:
            line = ASSIGNED.format(topic=names.predictions, partition=partition)
            assert any(
                line in m.log()[size:]
                for m, size in zip(survivors, killed["log_sizes"], strict=True)
            ), f"partition {partition} was not taken over\n{monitors.logs()}"
        for monitor in survivors:
            assert monitor.alive, monitors.logs()
            assert monitor.stop() == 0, monitors.logs()
        results = snapshot(store, stream.model)
        with store.engine.connect() as connection:
            claims = connection.execute(
                select(WindowClaim.window_start, WindowClaim.status, WindowClaim.owner).where(
                    WindowClaim.model == stream.model
                )
            ).all()

    # Each window evaluated exactly once, by one of the processes, from every partition.
    assert sorted((c.window_start, c.status) for c in claims) == [(s, DONE) for s in evaluated]
    owners = {f"{socket.gethostname()}:{m.pid}" for m in everyone}
    assert {c.owner for c in claims} <= owners
    assert evaluations(monitors, stream.model) == Counter(dict.fromkeys(evaluated, 1))
    assert [results[s]["rows"] for s in evaluated] == [stream.per_window] * len(evaluated)
    expected = reference_results(
        tmp_path, bootstrap=bootstrap, names=names, stream=stream, model=JOINT_DRIFT
    )
    # Joint drift included: each window's row sample is the same as one process's.
    assert all("methods" in results[s]["details"]["multivariate"] for s in evaluated)
    assert_same_results(results, expected)


# --- fencing: a zombie's stale checkpoint is refused ---


def _partial(topic: str, rows: int) -> PartialRow:
    return PartialRow(
        model="m",
        window_start=0.0,
        window_end=60.0,
        topic=topic,
        partition=0,
        sketch=f"rows={rows}".encode(),
        rows=rows,
    )


def test_a_stale_checkpoint_is_refused_and_writes_nothing(postgres_url: str) -> None:
    topic, group = unique_name("fenced"), unique_name("group")
    key = (topic, 0)
    with opened(postgres_url) as store:
        # Member A checkpoints offset 100; then B is assigned the partition, loads 100
        # and checkpoints 150 -- while A, evicted but alive, still believes it owns it.
        store.checkpoint(
            group, [_partial(topic, 100)], [ProgressRow(topic=topic, partition=0, next_offset=100)]
        )
        store.checkpoint(
            group,
            [_partial(topic, 150)],
            [ProgressRow(topic=topic, partition=0, next_offset=150)],
            expected={key: 100},
        )
        with pytest.raises(StaleCheckpointError) as refused:
            store.checkpoint(
                group,
                [_partial(topic, 130)],
                [ProgressRow(topic=topic, partition=0, next_offset=130)],
                expected={key: 100},
            )
        assert refused.value.partitions == [key]
        # Nothing of A's checkpoint was written: B's state stands.
        assert store.progress(group, topic)[0].next_offset == 150
        assert [p.rows for p in store.partials_for_partition(topic, 0)] == [150]
        # A checkpoint for a partition expected to have no row is refused once one exists.
        with pytest.raises(StaleCheckpointError):
            store.checkpoint(
                group,
                [],
                [ProgressRow(topic=topic, partition=0, next_offset=1)],
                expected={key: None},
            )


class _FakeConsumer:
    """The few KafkaConsumer methods the Ingestor uses, for one assigned partition."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.batches: list[dict[TopicPartition, list[Any]]] = []
        self.seeks: list[int | str] = []
        self.listener: Any = None
        # What the broker would report: the last fetch's highwater (None before a
        # fetch), the end offset asked for now, and the consumer's position.
        self.fetched_highwater: int | None = None
        self.end_offset: int | None = None
        self.at: int | None = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        return self.batches.pop(0) if self.batches else {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.seeks.append("beginning")

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.fetched_highwater

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int) -> dict[TopicPartition, int]:
        return {} if self.end_offset is None else dict.fromkeys(tps, self.end_offset)

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.at

    def pause(self, *tps: TopicPartition) -> None: ...

    def resume(self, *tps: TopicPartition) -> None: ...

    def commit_async(self, offsets: Any) -> None: ...

    def close(self) -> None: ...


class _FakeProducer:
    def flush(self) -> None: ...

    def close(self) -> None: ...


def _ingestor(
    config: ServiceConfig,
    store: Store,
    consumer: _FakeConsumer,
    runtimes: dict[str, ModelRuntime] | None = None,
    clock: Callable[[], float] | None = None,
) -> Ingestor:
    """An Ingestor on the fake consumer and producer (the store and runtimes are real)."""
    return Ingestor(
        config,
        store,
        runtimes if runtimes is not None else load_runtimes(config, store),
        Metrics(CollectorRegistry()),
        consumer=consumer,  # type: ignore[arg-type]
        producer=_FakeProducer(),  # type: ignore[arg-type]
        **({} if clock is None else {"clock": clock}),
    )


class _Message:
    def __init__(self, offset: int, value: bytes) -> None:
        self.offset, self.value, self.key, self.timestamp = offset, value, None, 0


def test_a_fenced_off_ingestor_drops_its_stale_state_and_reloads(
    postgres_url: str, tmp_path: Path
) -> None:
    stream = Stream(model=unique_name("credit"), windows=2, per_window=40, drift_from=9)
    names = Names.fresh(stream.model)
    path = write_config(
        tmp_path / "fenced.yaml",
        bootstrap="127.0.0.1:9",
        names=names,
        group=unique_name("fenced"),
        database_url=postgres_url,
    )
    store_reference(postgres_url, path, stream)
    config = ServiceConfig.load(path)
    tp = TopicPartition(names.predictions, 0)
    values = [value for _, value in stream.records(0)]
    with opened(postgres_url) as store:
        consumer = _FakeConsumer(tp)
        runtimes = load_runtimes(config, store)
        zombie = _ingestor(config, store, consumer, runtimes)
        zombie.assign([tp])
        consumer.batches.append({tp: [_Message(i, v) for i, v in enumerate(values[:10])]})
        zombie.poll_once()
        zombie.checkpoint()
        assert store.progress(config.consumer.group_id, tp.topic)[0].next_offset == 10
        # Evicted while alive: the zombie reads on in memory (to offset 20), while the
        # new owner reloads offset 10 and checkpoints offset 25.
        consumer.batches.append({tp: [_Message(i, values[i]) for i in range(10, 20)]})
        zombie.poll_once()
        runtime = runtimes[stream.model]
        decoded = [decode_prediction(v) for v in values[:25]]
        newer = sketch_records(runtime, [r for r in decoded if isinstance(r, PredictionRecord)])
        start, end = stream.window_start(0), stream.window_start(1)
        store.checkpoint(
            config.consumer.group_id,
            [
                PartialRow(
                    model=stream.model,
                    window_start=start,
                    window_end=end,
                    topic=tp.topic,
                    partition=0,
                    sketch=sketch_to_bytes(runtime.profile_version, newer),
                    rows=newer.rows,
                )
            ],
            [ProgressRow(topic=tp.topic, partition=0, next_offset=25)],
            expected={(tp.topic, 0): 10},
        )
        zombie.checkpoint()  # refused: the partition's state is dropped, nothing written
        assert tp not in zombie.states
        assert store.progress(config.consumer.group_id, tp.topic)[0].next_offset == 25
        assert [p.rows for p in store.partials_for_partition(tp.topic, 0)] == [25]
        # Still assigned (it has not noticed the rebalance yet): it reloads the newer
        # state and seeks to it, instead of skipping records or overwriting the state.
        zombie.poll_once()
        assert zombie.states[tp].next_offset == 25
        assert consumer.seeks[-1] == 25
        assert zombie.states[tp].partials[(stream.model, start)].sketch.rows == 25


def test_a_taken_over_partition_is_not_called_idle_before_its_first_fetch(
    postgres_url: str, tmp_path: Path
) -> None:
    """A partition inherited from a dead member holds the watermark until it is really read.

    The heartbeat that lets a partition go idle is only written once a fetch
    since the assignment has answered and the position reached both its
    highwater and the broker's end offset. Before that -- even when the end
    offset (which the embedded broker can report late) says "caught up" -- its
    row is left alone, so it looks unattended and holds the watermark back;
    otherwise the windows of its unread backlog could close without it.
    """
    stream = Stream(model=unique_name("credit"), windows=1, per_window=10, drift_from=9)
    names = Names.fresh(stream.model)
    path = write_config(
        tmp_path / "takeover.yaml",
        bootstrap="127.0.0.1:9",
        names=names,
        group=unique_name("takeover"),
        database_url=postgres_url,
    )
    store_reference(postgres_url, path, stream)
    config = ServiceConfig.load(path)
    group, tp = config.consumer.group_id, TopicPartition(names.predictions, 0)
    with opened(postgres_url) as store:
        # The dead member's last checkpoint: offset 40.
        store.checkpoint(
            group,
            [],
            [ProgressRow(topic=tp.topic, partition=0, next_offset=40, max_event_time=1.0)],
        )
        written = store.progress_updated_at(group, tp.topic)[0]
        consumer = _FakeConsumer(tp)
        heir = _ingestor(config, store, consumer, clock=lambda: written + 100.0)
        heir.assign([tp])
        consumer.at, consumer.end_offset = 40, 40  # a lagging end offset: "caught up"
        heir.checkpoint(heartbeat=True)
        assert store.progress_updated_at(group, tp.topic)[0] == written, "heartbeat before a fetch"
        consumer.fetched_highwater = 55  # the first fetch: 15 records to read
        heir.checkpoint(heartbeat=True)
        assert store.progress_updated_at(group, tp.topic)[0] == written, "heartbeat with a backlog"
        consumer.at = consumer.fetched_highwater = consumer.end_offset = 55  # read them all
        heir.checkpoint(heartbeat=True)
        assert store.progress_updated_at(group, tp.topic)[0] > written


def test_a_revoked_partition_is_not_reloaded_while_the_group_rebalances(
    postgres_url: str, tmp_path: Path
) -> None:
    """Between a revocation and the next assignment kafka-python still lists the partition.

    Reloading it then (as a partition whose load had failed) made a member consume
    and checkpoint a partition the group had given to another member, so two members
    wrote its state: seen as windows short of rows after a member joined.
    Only a partition assigned to this consumer and not loaded is loaded again.
    """
    stream = Stream(model=unique_name("credit"), windows=1, per_window=10, drift_from=9)
    names = Names.fresh(stream.model)
    path = write_config(
        tmp_path / "rebalance.yaml",
        bootstrap="127.0.0.1:9",
        names=names,
        group=unique_name("rebalance"),
        database_url=postgres_url,
    )
    store_reference(postgres_url, path, stream)
    config = ServiceConfig.load(path)
    tp = TopicPartition(names.predictions, 0)
    with opened(postgres_url) as store:
        consumer = _FakeConsumer(tp)  # assignment() keeps returning tp, as mid-rebalance
        member = _ingestor(config, store, consumer)
        member.assign([tp])
        assert tp in member.states
        member.revoke([tp])
        seeks = len(consumer.seeks)
        member.poll_once()
        member.poll_once()
        assert tp not in member.states, "a revoked partition was reloaded during the rebalance"
        assert len(consumer.seeks) == seeks
        member.assign([tp])  # the next generation gives it back: loaded again
        assert tp in member.states


class _Clocked(_FakeConsumer):
    """A fake consumer whose polls advance a shared fake clock (``stall_s`` per poll)."""

    def __init__(self, tp: TopicPartition, now: list[float]) -> None:
        super().__init__(tp)
        self.now = now
        self.stall_s = 0.0

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.now[0] += self.stall_s
        return super().poll(timeout_ms, max_records)


def _caught_up_member(postgres_url: str, tmp_path: Path, name: str) -> Any:
    """An ingestor that read one window's records at t = 1000 and is caught up since."""
    stream = Stream(model=unique_name("credit"), windows=1, per_window=10, drift_from=9)
    names = Names.fresh(stream.model)
    path = write_config(
        tmp_path / f"{name}.yaml",
        bootstrap="127.0.0.1:9",
        names=names,
        group=unique_name(name),
        database_url=postgres_url,
    )
    store_reference(postgres_url, path, stream)
    config = ServiceConfig.load(path)
    tp = TopicPartition(names.predictions, 0)
    now = [1000.0]
    consumer = _Clocked(tp, now)
    values = [value for _, value in stream.records(0)]
    consumer.batches.append({tp: [_Message(i, v) for i, v in enumerate(values)]})
    return config, tp, now, consumer, len(values)


def test_a_caught_up_partition_keeps_the_time_of_its_last_record(
    postgres_url: str, tmp_path: Path
) -> None:
    """Heartbeats keep a caught-up partition's last record time, so that it can go idle.

    They used to restart its idle clock at every checkpoint: an attended partition
    without traffic then never went idle, and held every window back for good.
    """
    config, tp, now, consumer, count = _caught_up_member(postgres_url, tmp_path, "quiet")
    with opened(postgres_url) as store:
        member = _ingestor(config, store, consumer, clock=lambda: now[0])
        member.assign([tp])
        member.poll_once()  # the records, at t = 1000
        consumer.at = consumer.fetched_highwater = consumer.end_offset = count
        for _ in range(50):  # 10 s of empty polls, a checkpoint (with heartbeat) each
            now[0] += 0.2
            member.poll_once(timeout_ms=0)
        row = store.progress(config.consumer.group_id, tp.topic)[0]
        updated = store.progress_updated_at(config.consumer.group_id, tp.topic)[0]
    assert row.last_record_at == 1000.0
    assert updated > 1009.0  # rewritten all along: attended, and idle after idle_timeout_s


def test_a_poll_blocked_by_an_outage_restarts_the_idle_clock(
    postgres_url: str, tmp_path: Path
) -> None:
    """After a poll that hung (coordinator lost, broker restarting), idleness starts over.

    kafka-python waits for a lost coordinator inside ``poll``, so no heartbeat
    sees the outage, and a restarted broker's end offsets can lag the records
    written meanwhile. The heartbeat after such a poll dates the partition's
    last activity to when the broker answered again, not to its last record.
    """
    config, tp, now, consumer, count = _caught_up_member(postgres_url, tmp_path, "stall")
    with opened(postgres_url) as store:
        member = _ingestor(config, store, consumer, clock=lambda: now[0])
        member.assign([tp])
        member.poll_once()  # the records, at t = 1000
        member.checkpoint()
        consumer.at = consumer.fetched_highwater = consumer.end_offset = count
        consumer.stall_s = 3.0  # the next poll hangs 3 s
        member.poll_once(timeout_ms=100)
        member.checkpoint(heartbeat=True)
        row = store.progress(config.consumer.group_id, tp.topic)[0]
    assert row.last_record_at == 1003.0
