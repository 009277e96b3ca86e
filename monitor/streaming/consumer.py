"""The consumer port of the ingest loop, and its kafka-python implementation.

:class:`monitor.streaming.ingest.Ingestor` talks to Kafka through
:class:`ConsumerPort`: the few consumer-group operations it needs (poll a
batch, pause, resume, seek, positions, highwater and end offsets, commit),
with partitions named by kafka-python's ``TopicPartition`` (a hashable named
tuple) whatever the client library. A poll returns each partition's records as
:class:`Records` -- columns of values, timestamps and offsets -- so the ingest
loop decodes a whole batch without touching one client object per record.

Two implementations: :class:`KafkaPythonConsumer` here (the default,
``consumer.backend: kafka-python``), and
:class:`monitor.streaming.confluent_consumer.ConfluentConsumer` over
librdkafka (``consumer.backend: confluent``, the ``driftline[confluent]``
extra). :func:`open_consumer` builds the configured one.

Rebalance callbacks reach the ingest loop through :class:`RebalanceListener`
(``assigned``, ``revoked``, ``lost``), called on the polling thread from
inside :meth:`ConsumerPort.poll`, by either backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

if TYPE_CHECKING:
    from monitor.config.service import ServiceConfig

__all__ = [
    "ConsumerPort",
    "KafkaPythonConsumer",
    "RebalanceListener",
    "Records",
    "open_consumer",
]


@dataclass(frozen=True, slots=True)
class Records:
    """One partition's records of a poll, in offset order, as columns.

    ``values`` are the raw values (None for a null value), ``timestamps`` the
    record timestamps in epoch milliseconds (negative: none) and ``offsets``
    the offsets. :meth:`key` reads one record's key (only dead letters need
    it, so the keys are not copied out of the client's objects).
    """

    values: list[bytes | None]
    timestamps: list[int]
    offsets: list[int]
    _messages: Sequence[Any]
    _key: Callable[[Any], bytes | None]

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def next_offset(self) -> int:
        """Return the offset after the last record."""
        return self.offsets[-1] + 1

    def key(self, index: int) -> bytes | None:
        """Return the key of record number ``index`` of the batch."""
        return self._key(self._messages[index])


class RebalanceListener(Protocol):
    """What a consumer calls, on the polling thread, when the group moves partitions."""

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """Partitions newly assigned: load their state and seek to their stored offsets."""

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Partitions taken away in an orderly rebalance: checkpoint, then drop their state."""

    def lost(self, partitions: list[TopicPartition]) -> None:
        """Partitions lost (already owned by another member): drop their state unwritten."""


class ConsumerPort(Protocol):
    """The consumer-group operations the ingest loop uses (see the module docstring)."""

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        """Join the group for ``topics``; rebalances call ``listener`` from :meth:`poll`."""

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Records]:
        """Return up to ``max_records`` records, by partition; wait at most ``timeout_ms``."""

    def assignment(self) -> set[TopicPartition]:
        """Return the partitions currently assigned to this member."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop returning records of ``partitions`` (the group membership is kept)."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Return records of ``partitions`` again."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` on."""

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read ``partitions`` from their first retained record on."""

    def position(self, partition: TopicPartition, timeout_ms: int = 0) -> int | None:
        """Return the next offset this member reads from ``partition`` (None if unknown)."""

    def highwater(self, partition: TopicPartition) -> int | None:
        """Return the highwater mark of the partition's last fetch since assignment, or None."""

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        """Ask the broker for the end offsets readable under the consumer's isolation level."""

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``{partition: next offset}`` to Kafka without waiting (for lag tooling)."""

    def close(self) -> None:
        """Leave the group and release the client."""


def open_consumer(config: ServiceConfig) -> ConsumerPort:
    """Return the consumer of ``consumer.backend``, built from the config's Kafka options."""
    if config.consumer.backend == "confluent":
        from monitor.streaming.confluent_consumer import ConfluentConsumer

        return ConfluentConsumer(config.confluent_consumer_options())
    return KafkaPythonConsumer(KafkaConsumer(**config.kafka_consumer_options()))


def _key(message: Any) -> bytes | None:
    key: bytes | None = message.key
    return key


class KafkaPythonConsumer:
    """:class:`ConsumerPort` over a kafka-python ``KafkaConsumer`` (or an object like one).

    A thin pass-through: kafka-python already speaks in ``TopicPartition``;
    polled ``ConsumerRecord`` lists become :class:`Records`.
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        """Subscribe with kafka-python's rebalance listener routed to ``listener``."""
        self.consumer.subscribe(topics, listener=_KafkaPythonListener(listener))

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Records]:
        """``KafkaConsumer.poll``, each partition's records turned into columns."""
        batch = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return {
            tp: Records(
                [m.value for m in messages],
                [m.timestamp for m in messages],
                [m.offset for m in messages],
                messages,
                _key,
            )
            for tp, messages in batch.items()
            if messages
        }

    def assignment(self) -> set[TopicPartition]:
        """``KafkaConsumer.assignment``."""
        return set(self.consumer.assignment())

    def pause(self, *partitions: TopicPartition) -> None:
        """``KafkaConsumer.pause``."""
        self.consumer.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """``KafkaConsumer.resume``."""
        self.consumer.resume(*partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """``KafkaConsumer.seek``."""
        self.consumer.seek(partition, offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """``KafkaConsumer.seek_to_beginning``."""
        self.consumer.seek_to_beginning(*partitions)

    def position(self, partition: TopicPartition, timeout_ms: int = 0) -> int | None:
        """``KafkaConsumer.position`` (raises if the partition is not assigned)."""
        position: int | None = self.consumer.position(partition, timeout_ms=timeout_ms)
        return position

    def highwater(self, partition: TopicPartition) -> int | None:
        """``KafkaConsumer.highwater``: from the last fetch response, None before one."""
        highwater: int | None = self.consumer.highwater(partition)
        return highwater

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        """``KafkaConsumer.end_offsets`` (the last stable offset under ``read_committed``)."""
        ends: dict[TopicPartition, int] = self.consumer.end_offsets(
            partitions, timeout_ms=timeout_ms
        )
        return ends

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """``KafkaConsumer.commit_async`` of the offsets, no metadata."""
        from kafka.structs import OffsetAndMetadata

        self.consumer.commit_async(
            {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        )

    def close(self) -> None:
        """``KafkaConsumer.close``."""
        self.consumer.close()


class _KafkaPythonListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Routes kafka-python's rebalance callbacks to a :class:`RebalanceListener`."""

    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.listener.revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # Only database reads and seek() there: kafka-python 3 forbids blocking consumer calls.
        self.listener.assigned(list(assigned))

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.listener.lost(list(lost))
