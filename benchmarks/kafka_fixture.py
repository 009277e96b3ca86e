"""Measures the Apache Kafka test fixture (tests/apache_kafka.py): docs/kafka-fixture.md's facts.

    .venv/bin/python -m benchmarks.kafka_fixture [--records 100000] [--runs 3]

For each run: a new broker is formatted and started (seconds to a served
metadata request), a consumer group with the suite's settings joins (seconds
to its first assignment), ``--records`` 200-byte records are produced and
consumed, resident memory is read idle and after the traffic, and the broker
is SIGKILLed and restarted on its data (seconds until it serves again).
Prints one line per run and the medians. Needs ``make kafka-dist``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kafka import KafkaConsumer, KafkaProducer

from tests.apache_kafka import start_kafka
from tests.servers import unique_name


def measure(records: int) -> dict[str, float]:
    """One run's measurements (seconds and MB)."""
    began = time.monotonic()
    broker = start_kafka()
    try:
        first_start = time.monotonic() - began
        idle_mb = broker.resident_bytes() / 1e6
        topic = unique_name("bench")
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=unique_name("group"),
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            auto_offset_reset="earliest",
        )
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        producer.send(topic, b"x").get(timeout=30)
        joined = time.monotonic()
        while not consumer.assignment():
            consumer.poll(timeout_ms=50)
        join_s = time.monotonic() - joined
        value = b"v" * 200
        for _ in range(records):
            producer.send(topic, value)
        producer.flush()
        producer.close()
        seen = 0
        while seen < records:
            seen += sum(len(b) for b in consumer.poll(timeout_ms=500).values())
        consumer.close()
        busy_mb = broker.resident_bytes() / 1e6
        crashed = time.monotonic()
        broker.restart()
        restart_s = time.monotonic() - crashed
        return {
            "format_and_start_s": first_start,
            "group_join_s": join_s,
            "rss_idle_mb": idle_mb,
            "rss_after_traffic_mb": busy_mb,
            "sigkill_restart_s": restart_s,
        }
    finally:
        broker.stop()


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for index in range(args.runs):
        run = measure(args.records)
        runs.append(run)
        print(f"run {index + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in run.items()))
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median: " + ", ".join(f"{k}={v:.2f}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
