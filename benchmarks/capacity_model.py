"""The capacity model of docs/capacity.md: a user's numbers in; processes, database size, IOPS out.

Every formula of the document is a function here; :mod:`benchmarks.scale`
uses the same functions to print the model's prediction next to what it
measured, and the document's worked projection is :func:`project` of its
inputs (``python -m benchmarks.capacity_model``).

Unit costs (:class:`UnitCosts`) are measured by the scale benchmark; the
defaults are the 500 x 30 x 12 run recorded in docs/capacity.md (after the
partial-size and sketching work of issue 12 was merged), and
:data:`TARGET_COSTS` are the issue's targets (25,000 records/s per process at
30 features), for projecting what a deployment will need once they are met.

>>> costs = UnitCosts()
>>> plan = project(Workload(models=500, features=30, records_per_s=10_000), costs)
>>> plan.processes >= 1 and plan.partitions >= plan.processes
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: Share of one core a driftline process is planned to use: one Python process is bound by
#: one core (ingest and evaluation share the interpreter), and headroom absorbs bursts.
PLANNED_UTILISATION = 0.7
#: PostgreSQL page size: writes are counted in pages for IOPS.
PAGE_BYTES = 8192


@dataclass(frozen=True, kw_only=True)
class UnitCosts:
    """Measured per-unit costs (docs/capacity.md, "Unit costs").

    CPU seconds per record of a driftline process is ``cpu_record_base_s +
    cpu_record_per_feature_s * features``; window evaluation seconds likewise
    with ``eval_*``. ``server_cpu_per_record_s`` is what Kafka and PostgreSQL
    spend per record (on the benchmark machine they share its cores).
    ``partial_bytes_*`` is the stored size of one partial row (payload plus row
    overhead, index included) by feature count; ``result_bytes_*`` that of
    one evaluated window (summary, feature rows, claim).
    ``process_cores`` is how many cores one process was seen to use at most.
    """

    # Measured 2026-12-04 after the partial-size and sketching work (docs/capacity.md, the
    # 1,200,000-record run): 87 us of process CPU per record at 30 features while ingesting,
    # 12 us of Kafka + PostgreSQL, 72-80 ms per 30-feature window evaluation, partials of
    # 1.2-1.8 KB.
    cpu_record_base_s: float = 0.0
    cpu_record_per_feature_s: float = 2.9e-6
    server_cpu_per_record_s: float = 12e-6
    eval_base_s: float = 0.01
    eval_per_feature_s: float = 0.0023
    partial_bytes_base: float = 400.0
    partial_bytes_per_feature: float = 45.0
    result_bytes_base: float = 900.0
    result_bytes_per_feature: float = 180.0
    process_cores: float = 1.0

    def cpu_per_record(self, features: float) -> float:
        """Return a driftline process's CPU seconds per record of a model with ``features``."""
        return self.cpu_record_base_s + self.cpu_record_per_feature_s * features

    def eval_seconds(self, features: float) -> float:
        """Return the seconds to evaluate one window of a model with ``features`` features."""
        return self.eval_base_s + self.eval_per_feature_s * features

    def partial_bytes(self, features: float) -> float:
        """Return the stored bytes of one partial row of a model with ``features`` features."""
        return self.partial_bytes_base + self.partial_bytes_per_feature * features

    def result_bytes(self, features: float) -> float:
        """Return the stored bytes of one evaluated window of a model with ``features``."""
        return self.result_bytes_base + self.result_bytes_per_feature * features


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A user's numbers: models, mean features per model, records/s, window, retention.

    ``active_share`` is the share of (model, window, partition) cells that
    receive at least one record (1.0: every model writes to every partition
    in every window, the worst case; :func:`active_share` computes it for a
    Zipf fleet). ``retention_days`` keeps results; ``partials_days`` keeps
    partial sketches of evaluated windows (``retention.partials``).
    """

    models: int
    features: float
    records_per_s: float
    window_s: float = 60.0
    retention_days: float = 30.0
    partials_days: float = 1.0
    checkpoint_interval_s: float = 5.0
    active_share: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What :func:`project` recommends and expects; every figure per the whole deployment."""

    processes: int
    partitions: int
    process_cpu_cores: float
    server_cpu_cores: float
    windows_per_s: float
    partial_rows_per_s: float
    checkpoints_per_s: float
    db_bytes_per_hour: float
    db_bytes_at_retention: float
    write_iops: float

    def as_dict(self) -> dict[str, float | int]:
        """Return the plan as a plain dict (for JSON)."""
        return asdict(self)


def active_share(weights: list[float], records_per_window: float, partitions: int) -> float:
    """Return the expected share of (model, partition) cells a window's records touch.

    ``weights`` are the models' traffic shares; a cell is touched when at least
    one of the window's records of that model lands in that partition (records
    spread evenly over partitions, Poisson arrivals).
    """
    per_cell = [w * records_per_window / partitions for w in weights]
    return sum(1.0 - math.exp(-x) for x in per_cell) / max(len(weights), 1)


def process_cpu(workload: Workload, costs: UnitCosts) -> float:
    """Return the driftline CPU cores the workload needs: ingest plus window evaluation."""
    ingest = workload.records_per_s * costs.cpu_per_record(workload.features)
    evaluation = workload.models / workload.window_s * costs.eval_seconds(workload.features)
    return ingest + evaluation


def project(workload: Workload, costs: UnitCosts) -> Plan:
    """Return the deployment :class:`Plan` for ``workload`` at the measured ``costs``.

    processes = ceil(CPU cores needed / (process_cores x PLANNED_UTILISATION));
    partitions = at least 2 per process (room to add processes without
    repartitioning), a multiple of 6; partial rows/s = models x partitions x
    active share / window; database size at retention = partials for
    ``partials_days`` plus one window (the open one, measured in the live-rate
    run: 3 windows of partial rows at 120 s retention of 1-minute windows)
    plus results for ``retention_days``; write IOPS = pages
    of partial and result bytes written per second plus one WAL flush per
    transaction (checkpoints and evaluated windows).
    """
    cores = process_cpu(workload, costs)
    processes = max(1, math.ceil(cores / (costs.process_cores * PLANNED_UTILISATION)))
    partitions = 6 * math.ceil(2 * processes / 6)
    windows_per_s = workload.models / workload.window_s
    partial_rows_per_s = workload.models * partitions * workload.active_share / workload.window_s
    partial_bytes_per_s = partial_rows_per_s * costs.partial_bytes(workload.features)
    result_bytes_per_s = windows_per_s * costs.result_bytes(workload.features)
    checkpoints_per_s = processes / workload.checkpoint_interval_s
    # A partial row is rewritten at every checkpoint while its window is open: count the
    # bytes written (for IOPS) separately from the bytes kept (for size).
    rewrites = max(1.0, workload.window_s / workload.checkpoint_interval_s)
    written_per_s = partial_bytes_per_s * rewrites + result_bytes_per_s
    write_iops = written_per_s / PAGE_BYTES + checkpoints_per_s + windows_per_s
    return Plan(
        processes=processes,
        partitions=partitions,
        process_cpu_cores=cores,
        server_cpu_cores=workload.records_per_s * costs.server_cpu_per_record_s,
        windows_per_s=windows_per_s,
        partial_rows_per_s=partial_rows_per_s,
        checkpoints_per_s=checkpoints_per_s,
        db_bytes_per_hour=(partial_bytes_per_s + result_bytes_per_s) * 3600,
        db_bytes_at_retention=partial_bytes_per_s
        * (workload.partials_days * 86400 + workload.window_s)
        + result_bytes_per_s * workload.retention_days * 86400,
        write_iops=write_iops,
    )


def throughput(
    processes: int,
    *,
    cpu_per_record_s: float,
    server_cpu_per_record_s: float,
    machine_cores: float,
    process_cores: float = 1.0,
) -> float:
    """Return the records/s ``processes`` processes reach on a machine of ``machine_cores`` cores.

    Each process is bound by ``process_cores`` (one Python interpreter), and
    all of them, Kafka and PostgreSQL share the machine:
    ``min(processes x process_cores / c, machine_cores / (c + s))`` with
    ``c`` the process CPU and ``s`` the servers' CPU per record.

    >>> round(throughput(1, cpu_per_record_s=1e-4, server_cpu_per_record_s=2e-5,
    ...                  machine_cores=2.0))
    10000
    >>> round(throughput(3, cpu_per_record_s=1e-4, server_cpu_per_record_s=2e-5,
    ...                  machine_cores=2.0))
    16667
    """
    alone = processes * process_cores / cpu_per_record_s
    shared = machine_cores / (cpu_per_record_s + server_cpu_per_record_s)
    return min(alone, shared)


#: The issue's targets: 25,000 records/s on one core at 30 features (40 us a record), window
#: evaluation at what the statistics alone cost today (5.8 ms a 30-feature window, measured:
#: the rest is decoding full partials and round trips), partials of at most 4 KB.
TARGET_COSTS = UnitCosts(
    cpu_record_base_s=10e-6,
    cpu_record_per_feature_s=1e-6,
    server_cpu_per_record_s=15e-6,
    eval_base_s=0.002,
    eval_per_feature_s=0.000127,
    partial_bytes_base=200.0,
    partial_bytes_per_feature=120.0,
)

#: The workloads of docs/capacity.md's worked projection.
#: Partials are kept one hour after evaluation (``retention.partials: 1h``): evaluated windows
#: need them only for late-label re-evaluation and rolling references.
PROJECTIONS = (
    Workload(models=500, features=30, records_per_s=25_000, partials_days=1 / 24),
    Workload(models=10_000, features=30, records_per_s=1_000_000, partials_days=1 / 24),
)


def main() -> None:
    """Print the worked projection of docs/capacity.md (10,000 models, 1,000,000 records/s)."""
    for label, costs in (("measured today", UnitCosts()), ("issue 12 targets", TARGET_COSTS)):
        for workload in PROJECTIONS:
            plan = project(workload, costs)
            print(
                f"{label}: {workload.models:,} models x {workload.features:g} features, "
                f"{workload.records_per_s:,.0f} records/s"
            )
            for key, value in plan.as_dict().items():
                print(f"  {key:>22}: {value:,.1f}")


if __name__ == "__main__":
    main()
