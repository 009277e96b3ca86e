"""The confluent-kafka (librdkafka) consumer backend: ``consumer.backend: confluent``.

:class:`ConfluentConsumer` implements :class:`monitor.streaming.consumer.ConsumerPort`
over ``confluent_kafka.Consumer`` (the ``driftline[confluent]`` extra), so the
ingest loop keeps its exactly-once checkpoints, rebalance handling, dead letters,
pauses, positions and lag unchanged. librdkafka fetches in its own C threads
and hands over a whole batch per ``consume(num_messages, timeout)``; the records
of a batch are turned into per-partition columns in one pass.

How kafka-python's behaviour is kept:

Rebalances
    Eager, as with kafka-python: librdkafka's ``range,roundrobin`` assignors
    (the same protocol names and algorithms as driftline's kafka-python
    assignors; a group mixing both backends is not tested). ``on_assign``,
    ``on_revoke`` and ``on_lost`` run on the polling thread inside
    :meth:`ConfluentConsumer.poll` and call the listener's ``assigned``,
    ``revoked`` and ``lost``.
Seeking on assignment
    librdkafka cannot seek a partition before it is assigned, and a seek
    right after ``assign()`` can fail while its fetcher starts. So the seeks
    the listener makes inside ``on_assign`` (to the offsets stored in the
    database) are collected and passed to ``assign()`` as the partitions'
    start offsets; pauses made there are applied right after it. A partition
    the listener did not seek (its state could not be loaded: it is paused)
    starts at Kafka's committed offset, which is never ahead of the database.
    A seek outside the callback that librdkafka refuses is retried before the
    next ``consume``.
Positions
    ``position`` is the offset after the last record returned, or the offset
    last sought or assigned before any record came (from the beginning: the
    partition's first offset, asked of the broker). librdkafka's own position
    stops after the last *record*, before a transaction marker or aborted
    records, where kafka-python's moves past them; so ``enable.partition.eof``
    is on, and the end-of-partition event -- delivered after the partition's
    last record, at the fetch offset, past the markers (the last stable offset
    under ``read_committed``) -- moves the position there.
Highwater and end offsets
    ``highwater`` is librdkafka's cached highwater mark, updated by every fetch
    response (None before the first); ``end_offsets`` asks the broker in one
    ListOffsets request for every partition (``offsets_for_times`` of "latest",
    under the consumer's ``isolation.level``: the last stable offset under
    ``read_committed``). The broker answers a connection's requests in order,
    so that request waits for the fetch in flight: ``fetch.wait.max.ms`` is
    100 ms by default here (librdkafka's is 500) so that neither it nor the
    end-of-partition event lags; fetches return as soon as records are there,
    so this costs only idle polling.
Commits
    ``enable.auto.commit`` and ``enable.auto.offset.store`` are off; the ingest
    loop commits the checkpointed offsets asynchronously after the database.
Errors
    Per-record errors and client errors (broker down, authentication) are
    logged and polling goes on, as kafka-python's retriable errors are. A
    broker error no retry can fix (an invalid session timeout, a refused
    group or topic) raises kafka-python's exception for that error code, as
    kafka-python's poll does; a fatal client error raises
    ``confluent_kafka.KafkaException``.

Dead letters are still written by kafka-python's producer
(:mod:`monitor.streaming.dead_letter`): they are rare, and one producer
implementation keeps their size limits and retries in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import groupby
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import TopicPartition
from kafka import errors as kafka_errors

from monitor.streaming.consumer import RebalanceListener, Records

__all__ = ["ConfluentConsumer"]

log = logging.getLogger(__name__)

#: librdkafka's offset for "no offset known" (RD_KAFKA_OFFSET_INVALID).
_INVALID: Final = -1001


def _where(message: Any) -> tuple[str, int]:
    return message.topic(), message.partition()


def _key(message: Any) -> bytes | None:
    key: bytes | None = message.key()
    return key


class ConfluentConsumer:
    """:class:`~monitor.streaming.consumer.ConsumerPort` over ``confluent_kafka.Consumer``.

    ``options`` is librdkafka's configuration
    (:meth:`monitor.config.service.ServiceConfig.confluent_consumer_options`);
    ``consumer`` replaces the client built from it (tests).
    """

    def __init__(self, options: Mapping[str, Any], *, consumer: Any = None) -> None:
        config = dict(options)
        # librdkafka refuses a max.poll.interval.ms below session.timeout.ms; kafka-python
        # does not. The ingest loop polls every 0.5 s, so the larger one changes nothing.
        if "session.timeout.ms" in config and "max.poll.interval.ms" in config:
            config["max.poll.interval.ms"] = max(
                config["max.poll.interval.ms"], config["session.timeout.ms"]
            )
        config["enable.partition.eof"] = True  # positions past transaction markers
        config.setdefault("fetch.wait.max.ms", 100)  # see the module docstring
        config.setdefault("error_cb", _log_client_error)
        config.setdefault("logger", logging.getLogger("confluent_kafka"))
        self._consumer = consumer if consumer is not None else Consumer(config)
        self._listener: RebalanceListener | None = None
        self._assigned: set[TopicPartition] = set()
        # Inside on_assign: the start offsets sought and the pauses asked for, applied by it.
        self._assigning: dict[TopicPartition, int] | None = None
        self._pause_after_assign: set[TopicPartition] = set()
        # Offsets sought (or assigned) before any record of the partition came since.
        self._sought: dict[TopicPartition, int] = {}
        # Seeks librdkafka refused (the partition's fetcher was starting): retried before polls.
        self._retry_seeks: dict[TopicPartition, int] = {}
        # Offset after the last record returned, per partition.
        self._positions: dict[TopicPartition, int] = {}

    # --- group membership ------------------------------------------------------------------

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        """Join the group for ``topics``; rebalances call ``listener`` from :meth:`poll`."""
        self._listener = listener
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        # The line kafka-python's coordinator logs: one format for both backends.
        log.info("Setting newly assigned partitions %s", set(tps))
        self._assigned = set(tps)
        self._assigning = {}
        self._pause_after_assign = set()
        try:
            if self._listener is not None:
                self._listener.assigned(tps)
            starts = self._assigning
        finally:
            self._assigning = None
        consumer.assign([_confluent(tp, starts.get(tp, OFFSET_STORED)) for tp in tps])
        for tp in tps:
            self._positions.pop(tp, None)
            self._retry_seeks.pop(tp, None)
            if tp in starts:
                self._sought[tp] = starts[tp]
        if self._pause_after_assign:
            consumer.pause([_confluent(tp) for tp in self._pause_after_assign])
            self._pause_after_assign = set()

    def _on_revoke(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:
        self._leave(partitions, lost=False)

    def _on_lost(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:
        self._leave(partitions, lost=True)

    def _leave(self, partitions: list[ConfluentPartition], *, lost: bool) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        try:
            if self._listener is not None:
                if lost:
                    self._listener.lost(tps)
                else:
                    self._listener.revoked(tps)
        finally:
            for tp in tps:
                self._assigned.discard(tp)
                self._sought.pop(tp, None)
                self._positions.pop(tp, None)
                self._retry_seeks.pop(tp, None)

    def assignment(self) -> set[TopicPartition]:
        """Return the partitions assigned to this member (inside ``on_assign``: the new ones)."""
        return set(self._assigned)

    # --- consuming -------------------------------------------------------------------------

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Records]:
        """Return up to ``max_records`` records by partition (rebalance callbacks run here)."""
        if self._retry_seeks:
            for tp, offset in list(self._retry_seeks.items()):
                self.seek(tp, offset)
        # What is queued, at once; if nothing, wait for the first record only (consume()
        # would wait for a full batch): kafka-python's poll returns as soon as it has some.
        messages = self._consumer.consume(max_records, 0)
        if not messages:
            first = self._consumer.poll(timeout_ms / 1000)
            if first is not None:
                messages = [first]
                if max_records > 1:
                    messages += self._consumer.consume(max_records - 1, 0)
        errors = [message.error() for message in messages]
        if any(errors):  # end-of-partition events, now and then an error
            for message, error in zip(messages, errors, strict=True):
                if error is None:
                    continue
                if error.code() == KafkaError._PARTITION_EOF:
                    self._reached_end(message)
                else:
                    _record_error(error)
            messages = [m for m, error in zip(messages, errors, strict=True) if error is None]
        # Records come in runs of one partition; each column is read by one comprehension.
        runs: dict[Any, list[Any]] = {}
        for where, run in groupby(messages, _where):
            runs.setdefault(where, []).extend(run)
        batch = {}
        for (topic, partition), kept in runs.items():
            tp = TopicPartition(topic, partition)
            offsets = [message.offset() for message in kept]
            self._positions[tp] = offsets[-1] + 1
            self._sought.pop(tp, None)
            batch[tp] = Records(
                [message.value() for message in kept],
                [message.timestamp()[1] for message in kept],
                offsets,
                kept,
                _key,
            )
        return batch

    def _reached_end(self, event: Any) -> None:
        """The partition's records so far are all returned: its position is the fetch offset."""
        tp = TopicPartition(event.topic(), event.partition())
        if tp in self._assigned and tp not in self._retry_seeks:
            self._positions[tp] = max(self._positions.get(tp, -1), event.offset())
            self._sought.pop(tp, None)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions`` (inside ``on_assign``: right after assigning them)."""
        if self._assigning is not None:
            self._pause_after_assign.update(partitions)
            return
        self._consumer.pause([_confluent(tp) for tp in partitions])

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""
        if self._assigning is not None:
            self._pause_after_assign.difference_update(partitions)
            return
        self._consumer.resume([_confluent(tp) for tp in partitions])

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` (inside ``on_assign``: its start offset)."""
        if self._assigning is not None:
            self._assigning[partition] = offset
            return
        self._positions.pop(partition, None)
        self._sought[partition] = offset
        try:
            self._consumer.seek(ConfluentPartition(partition.topic, partition.partition, offset))
        except KafkaException as exc:  # the fetcher is still starting: again before the next poll
            log.debug("seek %s to %s deferred: %s", partition, offset, exc)
            self._retry_seeks[partition] = offset
        else:
            self._retry_seeks.pop(partition, None)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read ``partitions`` from their first retained record."""
        for tp in partitions:
            self.seek(tp, OFFSET_BEGINNING)

    # --- offsets ---------------------------------------------------------------------------

    def position(self, partition: TopicPartition, timeout_ms: int = 0) -> int | None:
        """Return the next offset to read (None if unknown); raise if not assigned."""
        if partition not in self._assigned:
            raise ValueError(f"{partition} is not assigned to this consumer")
        known = self._positions.get(partition)
        if known is not None:
            # Past transaction markers and aborted records too: librdkafka's position.
            [current] = self._consumer.position([_confluent(partition)])
            return max(known, current.offset)
        sought = self._sought.get(partition)
        if sought == OFFSET_BEGINNING:  # the first offset: ask the broker once
            low, _ = self._consumer.get_watermark_offsets(
                _confluent(partition), timeout=max(timeout_ms / 1000, 1.0), cached=False
            )
            sought = self._sought[partition] = int(low)
        if sought is not None and sought >= 0:
            return sought
        [current] = self._consumer.position([_confluent(partition)])
        offset: int = current.offset
        return offset if offset >= 0 else None

    def highwater(self, partition: TopicPartition) -> int | None:
        """Return the highwater mark of the partition's last fetch response, or None."""
        if partition not in self._assigned:
            return None
        _, high = self._consumer.get_watermark_offsets(_confluent(partition), cached=True)
        return int(high) if high is not None and high >= 0 else None

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        """Ask the broker for each partition's end offset (under ``isolation.level``)."""
        if not partitions:
            return {}
        answers = self._consumer.offsets_for_times(
            [_confluent(tp, OFFSET_END) for tp in partitions], timeout=timeout_ms / 1000
        )
        ends = {}
        for answer in answers:
            if answer.error is not None:
                raise KafkaException(answer.error)
            ends[TopicPartition(answer.topic, answer.partition)] = int(answer.offset)
        return ends

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``{partition: next offset}`` to Kafka without waiting."""
        self._consumer.commit(
            offsets=[ConfluentPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()],
            asynchronous=True,
        )

    def close(self) -> None:
        """Leave the group (revocation callbacks run) and release the client."""
        self._consumer.close()


def _confluent(tp: TopicPartition, offset: int | None = None) -> ConfluentPartition:
    if offset is None:
        return ConfluentPartition(tp.topic, tp.partition)
    return ConfluentPartition(tp.topic, tp.partition, offset)


#: Broker errors that no retry can fix (the group's or the client's settings, permissions):
#: raised from poll, as kafka-python raises its non-retriable errors, so that the service
#: stops with an error instead of polling in vain. Anything else librdkafka retries itself.
_STOPPING_ERRORS: Final = frozenset(
    {
        KafkaError.INVALID_SESSION_TIMEOUT,
        KafkaError.INVALID_GROUP_ID,
        KafkaError.INCONSISTENT_GROUP_PROTOCOL,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.UNSUPPORTED_VERSION,
    }
)


def _record_error(error: KafkaError) -> None:
    """An error event of ``consume``: fatal and unfixable ones raise, the others are logged."""
    if error.code() in _STOPPING_ERRORS:
        # As kafka-python's error class of that broker error code: the same exception (and
        # log line) on both backends.
        raise kafka_errors.for_code(error.code())(error.str())
    if error.fatal():
        raise KafkaException(error)
    log.warning("consume: %s", error.str())


def _log_client_error(error: KafkaError) -> None:
    """librdkafka's ``error_cb``: the client retries by itself; say what happened."""
    if error.fatal():
        log.error("Kafka client failed for good: %s", error.str())
    else:
        log.warning("Kafka client: %s", error.str())
