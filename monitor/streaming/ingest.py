"""The Kafka consumer loop: poll, decode, route, aggregate, checkpoint.

One :class:`Ingestor` consumes the predictions and labels topics in the
consumer group. Valid predictions are aggregated per partition (see
:mod:`monitor.streaming.aggregate`); labels and predictions with a ``request_id`` are
stored for joins; every invalid record goes to the dead-letter topic with its
reason in a header and is counted -- the partition keeps flowing. A dead letter
is cut to fit the producer's and broker's limits, and one that cannot be
written even so is counted, logged and skipped (:mod:`monitor.streaming.dead_letter`):
no single record can stop a partition.

The consumer is a :class:`~monitor.streaming.consumer.ConsumerPort`: kafka-python
by default, librdkafka with ``consumer.backend: confluent``
(:mod:`monitor.streaming.confluent_consumer`); everything below holds for both.
A poll hands over each partition's records as columns, decoded as one batch
(:func:`monitor.records.decode_predictions`).

Exactly-once: at a checkpoint the dead-letter producer is flushed, then the
dirty partials and every partition's next offset are written in one database
transaction; on assignment a partition's state is reloaded from the database
and the consumer seeks to the stored offset. Kafka's own committed offsets are
written after the database, for lag tooling only.

Fencing: each checkpoint transaction checks that every partition's stored
offset is still the one this consumer last loaded or wrote. If another
consumer wrote it since (this one was evicted from the group while alive),
nothing is written; the partition's in-memory state is dropped and, while the
consumer is still assigned it, reloaded from the database.

Outages: when a checkpoint (or loading an assigned partition) fails -- the
database is unreachable -- the in-memory state is kept, every partition is
paused (``poll`` keeps the group membership and returns nothing, so nothing
is consumed past what is stored) and the checkpoint is retried with a
bounded exponential backoff; consumption resumes after it succeeds.

Watermark liveness: every checkpoint also rewrites the progress rows of the
partitions this consumer has caught up on (a heartbeat), and a partition
assigned for the first time is registered at once (offset 0, no event yet).
The evaluator treats a partition whose row nobody rewrites as "not attended"
(its consumer died or is still catching up) and waits for it, instead of
treating it as idle (see :meth:`monitor.streaming.evaluate.Evaluator.watermark`).

Reference versions: each window is sketched on the profile version in force
at its start (:class:`monitor.analyses.model.ModelRuntimes`). Every checkpoint
first reads the versions stored since (one metadata query per model), so a
new reference is used without a restart. It takes effect from the first window
starting after the event times already checkpointed
(:func:`monitor.analyses.reference.store_reference`); a partition that has
already sketched such a window on the older version -- records consumed but
not yet checkpointed -- drops its in-memory state, as a fenced-off one does,
and re-reads from its stored offset. Windows are per model, not per
``model_version``: see :mod:`monitor.analyses.model`.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.analyses.model import ModelRuntime, as_runtimes
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.records import (
    InvalidRecord,
    LabelRecord,
    PredictionRecord,
    decode_label,
    decode_predictions,
    route,
)
from monitor.store import Store
from monitor.store.repository import StaleCheckpointError, StaleReferenceError
from monitor.store.rows import LabelRow, PredictionRow, ProgressRow
from monitor.streaming.aggregate import PartitionState
from monitor.streaming.consumer import ConsumerPort, KafkaPythonConsumer, Records, open_consumer
from monitor.streaming.dead_letter import DETAIL_HEADER as DETAIL_HEADER
from monitor.streaming.dead_letter import REASON_HEADER as REASON_HEADER
from monitor.streaming.dead_letter import SOURCE_HEADER as SOURCE_HEADER
from monitor.streaming.dead_letter import DeadLetterWriter

log = logging.getLogger(__name__)

#: Defaults of the dead-letter producer (``broker.client_options`` override them).
#: ``max_block_ms`` (kafka-python's is 60 s) bounds how long a send may wait for the
#: dead-letter topic's metadata, blocking the ingest loop. Not idempotent: kafka-python's
#: idempotent producer fails every later send once the broker refused one record for
#: good (too large, say), and dead letters are at-least-once anyway.
DEAD_LETTER_PRODUCER_DEFAULTS: dict[str, Any] = {
    "max_block_ms": 10_000,
    "enable_idempotence": False,
}
#: Longest wait between two attempts of a failing checkpoint.
MAX_BACKOFF_S = 5.0
#: A poll that returns this much later than its timeout was blocked (kafka-python waits
#: for a lost coordinator inside poll): the broker was unreachable, so the partitions'
#: idle clocks restart once it answers (see Ingestor._heartbeats).
POLL_STALL_S = 1.0


class Ingestor:
    """Consumes prediction and label records into partial window sketches.

    ``consumer`` and ``producer`` are created from the config unless given
    (tests pass their own): the consumer of ``consumer.backend``
    (:func:`monitor.streaming.consumer.open_consumer`); a given consumer is a
    :class:`~monitor.streaming.consumer.ConsumerPort` or an object with
    kafka-python's ``KafkaConsumer`` methods. ``clock`` is the wall clock used
    for idle detection and checkpoint timing.
    """

    def __init__(
        self,
        config: ServiceConfig,
        store: Store,
        runtimes: Mapping[str, ModelRuntime],
        metrics: Metrics,
        *,
        consumer: ConsumerPort | Any | None = None,
        producer: KafkaProducer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        # Shared with the evaluator when given ModelRuntimes: a refresh here serves both.
        self.runtimes = as_runtimes(runtimes)
        self.metrics = metrics
        self.clock = clock
        self.group_id = config.consumer.group_id
        if consumer is None:
            consumer = open_consumer(config)
        elif not hasattr(consumer, "commit_offsets"):  # a KafkaConsumer or a test's stand-in
            consumer = KafkaPythonConsumer(consumer)
        self.consumer: ConsumerPort = consumer
        self.producer = producer or KafkaProducer(
            **{**DEAD_LETTER_PRODUCER_DEFAULTS, **config.kafka_producer_options()}
        )
        self.states: dict[TopicPartition, PartitionState] = {}
        # Fencing: the stored next offset of each partition as this consumer last read or wrote it.
        self._expected: dict[TopicPartition, int] = {}
        # Rows for label joins and dead letters, written at the next checkpoint (before it).
        self._pending_predictions: list[PredictionRow] = []
        self._pending_labels: list[LabelRow] = []
        self.dead_letters = DeadLetterWriter(
            self.producer,
            config.topics.dead_letter,
            metrics,
            max_value_bytes=config.dead_letter.max_value_bytes,
            retry_timeout_s=config.dead_letter.retry_timeout_s,
            clock=clock,
        )
        # Set while checkpoints fail: when to try again, and the current backoff.
        self._retry_at: float | None = None
        self._backoff_s = 0.0
        self._paused: set[TopicPartition] = set()
        # Partitions assigned to this consumer whose state is not loaded: the load failed
        # (database outage) or a stale checkpoint dropped it (fenced off). Never derived
        # from consumer.assignment(): between a revocation and the next assignment
        # kafka-python still lists the revoked partitions there, and loading one of them
        # then would consume (and heartbeat) a partition the group gives to another member.
        self._unloaded: set[TopicPartition] = set()
        # When this consumer last (re)attached to each partition: assigned it, or resumed
        # fetching after a broker or database outage. Heartbeats report a partition idle
        # only after idle_timeout_s of fetching it without records since then.
        self._attached: dict[TopicPartition, float] = {}
        self._reattach = False
        self._known = frozenset(self.runtimes)
        # Per model, the newest profile version whose windows this consumer has checked.
        self._checked_versions = {name: r.profile_version for name, r in self.runtimes.items()}
        self._pending_records = 0
        self._last_checkpoint = clock()
        topics = config.topics
        self.consumer.subscribe([topics.predictions, topics.labels], _Rebalance(self))

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, then checkpoint and close the consumer."""
        # Everything allocated so far (modules, profiles, clients) lives as long as the
        # process: move it out of the collector's reach. Each poll keeps thousands of
        # decoded records alive long enough to reach the oldest generation, and every
        # full collection would otherwise walk the whole heap (benchmarks/INGEST.md:
        # 1.4 of 16.5 CPU seconds without the freeze, 0.3 with it).
        gc.freeze()
        # A poll allocates a few objects per record, all freed together after the batch;
        # collecting the youngest generation every 700 allocations (the default) only
        # re-walks live batches.
        gc.set_threshold(50_000, 20, 20)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.close()

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch, process it and checkpoint if due; return the records seen.

        While checkpoints fail every partition is paused: the poll keeps the
        group membership (and runs rebalances) but consumes nothing, and the
        checkpoint is retried when its backoff has passed.
        """
        if self._retry_at is None or self.clock() >= self._retry_at:
            self._load_missing()
        failing = self._retry_at is not None
        if failing:
            self._pause(self.consumer.assignment())
            timeout_ms = min(timeout_ms, 100)
        started = self.clock()
        try:
            batch = self.consumer.poll(
                timeout_ms=timeout_ms, max_records=self.config.consumer.max_poll_records
            )
        except KafkaError as exc:  # the confluent backend raises only fatal errors
            if not exc.retriable:
                raise
            # The broker is unreachable (restarting, network): the state is kept, the
            # consumer reconnects and rejoins on a later poll.
            log.warning("poll failed, retrying: %s", exc)
            self._reattach = True
            time.sleep(min(timeout_ms, 500) / 1000)
            return 0
        if self.clock() - started > timeout_ms / 1000 + POLL_STALL_S:
            # Blocked inside poll (coordinator lost, broker restarting): no heartbeat saw
            # the outage, and a restarted broker's end offsets can lag the records written
            # meanwhile, so no partition may go idle on its pre-outage clock.
            self._reattach = True
        seen = 0
        for tp, records in batch.items():
            if tp not in self.states:
                continue  # revoked while the batch was in flight
            seen += len(records)
            if tp.topic == self.config.topics.labels:
                self._labels(tp, records)
            else:
                self._predictions(tp, records)
        self._pending_records += seen
        consumer = self.config.consumer
        if failing:
            if self._retry_at is not None and self.clock() >= self._retry_at:
                self._checkpoint_or_back_off()
        elif (
            self._pending_records >= consumer.checkpoint_records
            or self.clock() - self._last_checkpoint >= consumer.checkpoint_interval_s
        ):
            self._checkpoint_or_back_off()
        return seen

    def close(self) -> None:
        """Checkpoint, leave the group and release the clients.

        If the last checkpoint fails, what it would have written is read again
        by the next owner of the partitions: nothing is lost.
        """
        try:
            self.checkpoint()
        except Exception as exc:
            log.warning("last checkpoint failed (the next owner re-reads from the store): %s", exc)
        self.consumer.close()
        self.producer.close()

    def _checkpoint_or_back_off(self) -> bool:
        """Checkpoint; if that fails, pause consumption and schedule a retry (True if written)."""
        try:
            self.checkpoint(heartbeat=True)
        except Exception as exc:  # the database (or the dead-letter topic) is unreachable
            self._back_off("checkpoint", exc)
            return False
        if self._retry_at is not None:
            log.warning("checkpoint succeeded again; consumption resumed")
            # Fetching was paused: the idle clocks restart now. Only then -- restarting
            # them at every checkpoint kept every attended partition from ever going idle.
            self._attached = dict.fromkeys(self.states, self.clock())
        self._retry_at = None
        self._backoff_s = 0.0
        self._resume_paused()
        return True

    def _back_off(self, what: str, exc: Exception) -> None:
        """Pause every partition and schedule the next attempt, backing off exponentially."""
        first = self._retry_at is None
        self._backoff_s = min(max(self._backoff_s * 2, 0.1), MAX_BACKOFF_S)
        self._retry_at = self.clock() + self._backoff_s
        self._pause(self.consumer.assignment())
        reason = " ".join(str(exc).split())[:500]
        if first:
            log.warning("%s failed, consumption paused until it succeeds: %s", what, reason)
        else:
            log.debug("%s still failing (next try in %.1f s): %s", what, self._backoff_s, reason)

    def _pause(self, partitions: Iterable[TopicPartition]) -> None:
        tps = [tp for tp in partitions if tp not in self._paused]
        if tps:
            self.consumer.pause(*tps)
            self._paused.update(tps)

    def _resume_paused(self) -> None:
        assigned = self.consumer.assignment()
        ready = [tp for tp in self._paused if tp in assigned and tp in self.states]
        if ready:
            self.consumer.resume(*ready)
        self._paused = {tp for tp in self._paused if tp in assigned and tp not in self.states}

    def _load_missing(self) -> None:
        """Load assigned partitions whose state could not be loaded or was fenced off."""
        assigned = self.consumer.assignment()
        missing = [tp for tp in self._unloaded if tp in assigned and tp not in self.states]
        if missing and self.assign(missing) and self._retry_at is None:
            self._resume_paused()

    # --- records -------------------------------------------------------------------------

    def _predictions(self, tp: TopicPartition, records: Records) -> None:
        state = self.states[tp]
        valid: list[PredictionRecord] = []
        offsets: list[int] = []
        limit = self.config.consumer.max_record_bytes
        decoded_batch = decode_predictions(records.values, records.timestamps, max_bytes=limit)
        known = self._known
        valid = [r for r in decoded_batch if type(r) is PredictionRecord and r.model in known]
        if len(valid) == len(decoded_batch):  # the usual batch: every record valid
            offsets = records.offsets
        else:
            valid = []
            for index, decoded in enumerate(decoded_batch):
                if type(decoded) is PredictionRecord and decoded.model in known:
                    valid.append(decoded)
                    offsets.append(records.offsets[index])
                    continue
                invalid = route(decoded, known)
                if isinstance(invalid, InvalidRecord):  # always: known models were taken above
                    self._dead_letter(tp, records, index, invalid)
        next_offset = records.next_offset
        outcome = state.add(self.runtimes, valid, next_offset, self.clock(), offsets)

        for model, count in outcome.counted.items():
            self.metrics.records_total.labels(model=model).inc(count)
        for model, count in outcome.late.items():
            self.metrics.records_late_total.labels(model=model).inc(count)
        self._store_predictions(valid)
        self._lag_from_fetch(tp)

    def _store_predictions(self, records: Iterable[PredictionRecord]) -> None:
        rows = []
        # Config and window: the same in every version.
        latest = {name: r for name, r in self.runtimes.items() if r.config.labels.enabled}
        if not latest:  # no model joins labels: nothing to keep
            return
        # The newest window containing t is the same for every t in [its start, + step):
        # records in partition order mostly fall there, as the previous record did. Only
        # for whole-second steps, where start + step is exact (else: no reuse).
        cached, low, top, start = "", 0.0, -1.0, 0.0
        for record in records:
            runtime = latest.get(record.model)
            if record.request_id is None or runtime is None:
                continue
            t = record.event_time
            if record.model != cached or not low <= t < top:
                window = runtime.window
                start, _ = window.windows_for(t)[-1]
                step = window.step_s
                cached, low = record.model, start
                top = start + step if float(step).is_integer() else start
            label = record.prediction.get("label")
            rows.append(
                PredictionRow(
                    model=record.model,
                    request_id=record.request_id,
                    event_time=record.event_time,
                    window_start=start,
                    label=None if label is None else str(label),
                    score=record.prediction.get("score"),
                )
            )
        # Written at the next checkpoint, before it: idempotent (duplicates ignored), so
        # re-reading after a crash is harmless.
        self._pending_predictions += rows

    def _labels(self, tp: TopicPartition, records: Records) -> None:
        rows = []
        limit = self.config.consumer.max_record_bytes
        for index, (value, timestamp) in enumerate(
            zip(records.values, records.timestamps, strict=True)
        ):
            decoded = decode_label(value, timestamp, max_bytes=limit)
            if isinstance(decoded, LabelRecord):
                decoded = route(decoded, self._known)
            if isinstance(decoded, InvalidRecord):
                self._dead_letter(tp, records, index, decoded)
                continue
            rows.append(
                LabelRow(
                    model=decoded.model,
                    request_id=decoded.request_id,
                    label=str(decoded.label),
                    event_time=decoded.event_time,
                )
            )
        self._pending_labels += rows  # an upsert at the next checkpoint: idempotent
        self.states[tp].skip(records.next_offset)

    def _dead_letter(
        self, tp: TopicPartition, records: Records, index: int, invalid: InvalidRecord
    ) -> None:
        model = invalid.model or "unknown"
        self.metrics.records_invalid_total.labels(model=model, reason=invalid.reason.value).inc()
        # Never raises: a letter that cannot be written is counted, logged and skipped.
        self.dead_letters.add(
            tp.topic,
            tp.partition,
            records.offsets[index],
            key=records.key(index),
            value=records.values[index],
            reason=invalid.reason.value,
            detail=invalid.detail,
        )

    def _lag_from_fetch(self, tp: TopicPartition) -> None:
        """Update the partition's lag from its last fetch: highwater mark minus position.

        Only under ``read_uncommitted``, where the highwater mark is the end a
        consumer can read to. Under ``read_committed`` the end is the last stable
        offset, which fetch responses do not expose here; every checkpoint sets the
        lag of every partition from the broker's end offsets (:meth:`_positions_and_lag`).
        """
        if self.config.consumer.isolation_level != "read_uncommitted":
            return
        highwater = self._highwater(tp)
        position = self._position(tp)
        if highwater is not None and position is not None:
            self._set_lag(tp, highwater - position)

    def _set_lag(self, tp: TopicPartition, lag: int) -> None:
        self.metrics.consumer_lag_records.labels(topic=tp.topic, partition=str(tp.partition)).set(
            max(lag, 0)
        )

    def _position(self, tp: TopicPartition) -> int | None:
        """The consumer's position in ``tp`` (the next offset it reads), or None if unknown."""
        try:
            position: int | None = self.consumer.position(tp, timeout_ms=0)
        except Exception:  # not assigned any more, or no position yet
            return None
        return position

    def _positions_and_lag(self) -> dict[TopicPartition, int] | None:
        """Ask the broker for every partition's end offset; advance offsets; set the lag gauges.

        The end offset is the one this consumer's ``isolation_level`` can read to
        (the last stable offset under ``read_committed``), so the lag is exact:
        end offset minus position. A partition whose position moved past its
        stored next offset without a record -- transaction markers and aborted
        transactions occupy offsets that are never returned -- has its next
        offset advanced to the position, so its checkpoint (and the offset
        committed to Kafka) does not stay one marker behind. Every record before
        the position was returned by an earlier poll and processed: nothing is
        skipped. Returns the end offsets, or None if the broker cannot be asked.
        """
        if not self.states:
            return {}
        try:
            ends: dict[TopicPartition, int] = self.consumer.end_offsets(
                list(self.states), timeout_ms=2000
            )
        except Exception as exc:  # the broker is unreachable: no heartbeat, lag unchanged
            log.debug("end offsets unavailable: %s", exc)
            return None
        for tp, state in self.states.items():
            position = self._position(tp)
            if position is None:
                continue
            if state.next_offset is None or position > state.next_offset:
                state.skip(position)
            end = ends.get(tp)
            if end is not None:
                self._set_lag(tp, end - position)
        return ends

    # --- checkpoints and rebalances --------------------------------------------------------

    def checkpoint(self, *, heartbeat: bool = False, _relearned: bool = False) -> None:
        """Write every dirty partial and every partition's offset in one transaction.

        Dead letters are flushed and the rows for label joins written first. With
        ``heartbeat``, the unchanged progress rows of the partitions this consumer
        has caught up on are rewritten too (see the module docstring). Partitions
        another consumer wrote since are dropped (fencing) and the rest written.
        Raises if the database (or the dead-letter topic) cannot be written; the
        in-memory state is then kept for the next attempt.
        """
        self._refresh_references()
        self._flush_dead_letters()  # dead letters are durable before their offsets move on
        if self._pending_predictions:
            self.store.save_predictions(self._pending_predictions)
            self._pending_predictions = []
        if self._pending_labels:
            self.store.save_labels(self._pending_labels)
            self._pending_labels = []
        ends = self._positions_and_lag() if heartbeat else None
        partials, progress = [], []
        idle = []
        for tp, state in self.states.items():
            rows, marks = state.rows()
            partials += rows
            progress += marks
            if not marks:
                idle.append(tp)
        if heartbeat and idle:
            progress += self._heartbeats(idle, ends)
        if partials or progress:
            expected = {
                (p.topic, p.partition): self._expected.get(TopicPartition(p.topic, p.partition))
                for p in progress
            }
            models = {p.model for p in partials if p.model in self.runtimes}
            seen = {model: self.runtimes.seen(model) for model in models}
            try:
                self.store.checkpoint(
                    self.group_id, partials, progress, expected=expected, seen_versions=seen
                )
            except StaleReferenceError as stale:
                if _relearned:  # not learnt by a refresh: let the next checkpoint try again
                    raise
                # A reference was stored since the refresh above: learn it, re-read what it
                # overtook, and write again.
                log.info("%s; learning it and re-reading those windows", stale)
                self._refresh_references()
                self.checkpoint(heartbeat=heartbeat, _relearned=True)
                return
            except StaleCheckpointError as stale:
                log.warning("%s; dropping their state and reloading them if still assigned", stale)
                for topic, partition in stale.partitions:
                    self._drop(TopicPartition(topic, partition))
                    self._unloaded.add(TopicPartition(topic, partition))
                self.checkpoint(heartbeat=heartbeat)
                return
        for state in self.states.values():
            state.mark_clean()
            state.forget_closed(self.runtimes)  # stored: free the windows that closed
        for p in progress:
            self._expected[TopicPartition(p.topic, p.partition)] = p.next_offset
        self._pending_records = 0
        self._last_checkpoint = self.clock()
        if progress:
            offsets = {TopicPartition(p.topic, p.partition): p.next_offset for p in progress}
            self._commit_to_kafka(offsets)

    def _refresh_references(self) -> None:
        """Learn the reference versions stored since; re-read partitions they overtook.

        A new version is in force from a window after every checkpointed event
        time, but this consumer may have sketched such a window already on the
        older version (records read since its last checkpoint). Those
        partitions' state is dropped without being written and reloaded from
        the store (which holds no such window), so the records are sketched
        again on the version in force.
        """
        self.runtimes.refresh(self.store)
        # Not refresh()'s return value: the service's reload job may have added them first.
        new = {
            (name, r.profile_version)
            for name in self.runtimes
            for r in self.runtimes.versions(name).runtimes
            if r.profile_version > self._checked_versions.get(name, 0)
        }
        self._checked_versions = {
            name: self.runtimes[name].profile_version for name in self.runtimes
        }
        if not new:
            return
        for tp, state in list(self.states.items()):
            overtaken = [
                (model, start)
                for (model, start), partial in state.partials.items()
                if model in self.runtimes
                and (model, (chosen := self.runtimes.at(model, start).profile_version)) in new
                and partial.profile_version != chosen
            ]
            if overtaken:
                model, start = overtaken[0]
                log.info(
                    "%s/%s: a new reference of %s is in force from window %s on; "
                    "re-reading the partition from its stored offset",
                    tp.topic,
                    tp.partition,
                    model,
                    start,
                )
                self._drop(tp)
                self._unloaded.add(tp)

    def _flush_dead_letters(self) -> None:
        """Wait until every dead letter is written or given up; raise if some must be retried.

        See :meth:`monitor.streaming.dead_letter.DeadLetterWriter.flush`: retriable failures
        are retried (for at most ``dead_letter.retry_timeout_s``), others given up.
        """
        self.dead_letters.flush()

    def _heartbeats(
        self, partitions: list[TopicPartition], ends: Mapping[TopicPartition, int] | None
    ) -> list[ProgressRow]:
        """The unchanged progress rows of those ``partitions`` this consumer has caught up on.

        ``ends`` are the end offsets the broker reported for this checkpoint
        (:meth:`_positions_and_lag`, which also moved every next offset up to the
        consumer's position; None: the broker could not be asked, and then no
        partition counts as caught up). Caught up means two things. The next
        offset has reached that end offset. And a fetch response for the
        partition has come since this consumer was assigned it, and the next
        offset has reached that response's highwater mark: before its first fetch, a partition
        taken over from a dead member has not been read at all. Under
        ``read_committed`` the highwater mark runs ahead of the end offset while
        a transaction is open, so a partition with an open transaction never
        counts as caught up: its pending records may still be committed into an
        open window. The row's ``last_record_at`` is at least the time this
        consumer (re)attached to the partition: idleness is only claimed after
        ``idle_timeout_s`` of fetching it for real (a partition's first fetch
        after a reconnect can come a second late).
        """
        if ends is None:  # no heartbeat: the partitions look unattended, which is safe
            self._reattach = True
            return []
        if self._reattach:  # the broker answers again: the idle clocks start now
            self._reattach = False
            self._attached = dict.fromkeys(self.states, self.clock())
        rows = []
        for tp in partitions:
            # The next offset already includes the consumer's position: _positions_and_lag
            # moved it there for this checkpoint.
            row = self.states[tp].progress_row()
            end = ends.get(tp)
            highwater = self._highwater(tp)
            if (
                row is not None
                and end is not None
                and highwater is not None
                and row.next_offset >= max(end, highwater)
            ):
                attached = self._attached.get(tp, -math.inf)
                if row.last_record_at is None or row.last_record_at < attached:
                    row = replace(row, last_record_at=attached)
                rows.append(row)
        return rows

    def _highwater(self, tp: TopicPartition) -> int | None:
        """The highwater mark of the partition's last fetch since assignment, or None before one."""
        try:
            highwater: int | None = self.consumer.highwater(tp)
        except Exception:  # not assigned any more
            return None
        return highwater

    def _drop(self, tp: TopicPartition) -> None:
        self.states.pop(tp, None)
        self._expected.pop(tp, None)
        self._attached.pop(tp, None)

    def _commit_to_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            self.consumer.commit_offsets(offsets)
        except Exception as exc:  # informational only: the database holds the real offsets
            log.debug("kafka offset commit skipped: %s", exc)

    def assign(self, partitions: Iterable[TopicPartition]) -> bool:
        """Reload stored state for newly assigned partitions and seek to their stored offsets.

        A partition never checkpointed is registered first (see
        :meth:`Store.register_partitions`). Returns False if the database
        could not be read: those partitions stay without state, paused, and
        are loaded again before a later poll (:meth:`poll_once`).
        """
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            if tp not in self.states:
                by_topic[tp.topic].append(tp)
        loaded = True
        for topic, tps in by_topic.items():
            try:
                self._load(topic, tps)
            except Exception as exc:  # the database is unreachable: retried before a later poll
                self._unloaded.update(tps)
                self._pause(tps)
                self._back_off(f"loading the stored state of {len(tps)} {topic} partitions", exc)
                loaded = False
            else:
                self._unloaded.difference_update(tps)
        return loaded

    def _load(self, topic: str, tps: list[TopicPartition]) -> None:
        now = self.clock()
        self.store.register_partitions(
            self.group_id,
            [
                ProgressRow(topic=topic, partition=tp.partition, next_offset=0, last_record_at=now)
                for tp in tps
            ],
        )
        stored = self.store.progress(self.group_id, topic)
        restored = {}
        for tp in tps:
            progress = stored.get(tp.partition)
            partials = (
                self.store.partials_for_partition(
                    tp.topic, tp.partition, since_window_start=self._open_since(progress)
                )
                if topic == self.config.topics.predictions
                else []
            )
            restored[tp] = (progress, partials)
        for tp, (progress, partials) in restored.items():
            self._attached[tp] = now
            self.states[tp] = PartitionState.restore(
                tp.topic, tp.partition, progress, partials, self.runtimes.profiles()
            )
            self._expected.pop(tp, None)
            if progress is not None:
                self._expected[tp] = progress.next_offset
            if progress is None or progress.next_offset == 0:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, progress.next_offset)
            start = progress.next_offset if progress is not None else 0
            log.info("assigned %s/%s at offset %s", tp.topic, tp.partition, start or "beginning")

    def _open_since(self, progress: ProgressRow | None) -> float | None:
        """Earliest start of a window of the partition that can still take a record.

        Partials of older windows are stored and final (only late records would go
        there): loading them would make restarts cost time and memory in proportion
        to the whole history. None (load everything) before the first event.
        """
        if progress is None or progress.max_event_time is None:
            return None
        return min(
            progress.max_event_time - r.window.allowed_lateness_s - r.window.size_s
            for r in self.runtimes.values()
        )

    def revoke(self, partitions: Iterable[TopicPartition], *, lost: bool = False) -> None:
        """Checkpoint (unless the partitions were lost to another member) and drop their state.

        If that checkpoint fails, the state is dropped all the same: the next
        owner re-reads what it covered from the stored offsets.
        """
        if not lost:
            try:
                self.checkpoint()
            except Exception as exc:
                log.warning(
                    "checkpoint on revocation failed; the next owner re-reads from the "
                    "stored offsets: %s",
                    " ".join(str(exc).split())[:500],
                )
        for tp in partitions:
            self._drop(tp)
            self._paused.discard(tp)
            self._unloaded.discard(tp)


class _Rebalance:
    """Routes the consumer's rebalance callbacks to the :class:`Ingestor`."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.ingestor.revoke(partitions)

    def assigned(self, partitions: list[TopicPartition]) -> None:
        # Only database reads and seek() here: kafka-python 3 forbids blocking consumer calls.
        self.ingestor.assign(partitions)

    def lost(self, partitions: list[TopicPartition]) -> None:
        self.ingestor.revoke(partitions, lost=True)
