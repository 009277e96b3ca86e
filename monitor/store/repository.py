"""The :class:`Store`: every read and write of the service's database.

Writes are one transaction each. On SQLite they begin with ``BEGIN
IMMEDIATE`` (see :func:`monitor.store.engine.configure_sqlite`), so a write
never fails halfway for a stale read snapshot; on PostgreSQL they run at READ
COMMITTED and rely on unique keys and compare-and-set updates for races.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import (
    ColumnElement,
    String,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from detectors.window_result import WindowResult
from monitor.store import _sql
from monitor.store.engine import SUPPORTED_DIALECTS, WRITE_OPTION, create_engine
from monitor.store.errors import StoreError
from monitor.store.models import (
    CLAIMED,
    DONE,
    FeatureResult,
    Label,
    Partial,
    PartitionProgress,
    Prediction,
    ReferenceProfile,
    WindowClaim,
    WindowSummary,
)
from monitor.store.result_json import window_result_from_rows, window_result_rows
from monitor.store.rows import (
    FeatureResultRow,
    JoinedPrediction,
    LabelRow,
    PartialRow,
    PredictionRow,
    ProgressRow,
    WindowSummaryRow,
)
from monitor.store.schema import migrate

Clock = Callable[[], float]
#: ``(topic, partition)``: a key of :meth:`Store.checkpoint`'s ``expected`` offsets.
TopicPartitionKey = tuple[str, int]
# Concurrent save_profile calls compute the same next version; the loser retries.
_PROFILE_ATTEMPTS = 5
# Beyond this many models a due-window query filters in Python, not with an IN list.
_IN_LIST_LIMIT = 5000


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredProfileRow:
    """One stored reference profile version's metadata (columns of ``reference_profiles``).

    ``effective_from`` None: in force from the start; ``model_version`` None: not given.
    """

    version: int
    model_version: str | None
    effective_from: float | None
    created_at: float


class StaleCheckpointError(RuntimeError):
    """A checkpoint was refused: another consumer wrote some of its partitions since.

    ``partitions`` are the ``(topic, partition)`` keys whose stored offset was not
    the one the writer expected; nothing of the checkpoint was written.
    """

    def __init__(self, partitions: Collection[TopicPartitionKey]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(
            "stale checkpoint refused: another consumer wrote "
            + ", ".join(f"{topic}/{partition}" for topic, partition in self.partitions)
        )


class StaleReferenceError(RuntimeError):
    """A checkpoint was refused: a reference version its writer has not seen yet is in force.

    ``windows`` are the ``(model, window_start)`` of the refused partials. The
    writer learns the new versions, re-reads the windows they overtook, and
    writes again.
    """

    def __init__(self, windows: Collection[tuple[str, float]]) -> None:
        self.windows = sorted(windows)
        super().__init__(
            "checkpoint refused: a reference stored meanwhile is in force for "
            + ", ".join(f"{model} window {start}" for model, start in self.windows[:5])
        )


class Store:
    """The service's database: profiles, partial sketches, offsets, claims, results, labels.

    ``engine`` should come from :func:`monitor.store.create_engine` (SQLite
    settings); ``clock`` gives the epoch seconds stamped on rows (claim ages,
    ``updated_at``, ...). Only SQLite and PostgreSQL are supported; another
    dialect raises :class:`StoreError`. Use :meth:`connect` to open and
    migrate a database in one step.
    """

    def __init__(self, engine: Engine, *, clock: Clock = time.time) -> None:
        if engine.dialect.name not in SUPPORTED_DIALECTS:
            raise StoreError(
                engine.url,
                f"unsupported dialect {engine.dialect.name!r}; "
                f"use one of {', '.join(SUPPORTED_DIALECTS)}",
            )
        self.engine = engine
        self.clock = clock
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._dialect = engine.dialect.name
        #: Called after each committed checkpoint with ``(partial rows, payload bytes,
        #: seconds from begin to commit)``; the service counts them in its metrics.
        self.checkpoint_observer: Callable[[int, int, float], None] | None = None

    @classmethod
    def connect(cls, url: str | URL, *, clock: Clock = time.time) -> Store:
        """Open the database at ``url``, migrate it to the newest schema, return its Store.

        Raises :class:`StoreError` (password masked) if the URL is bad or the
        database cannot be reached or migrated.
        """
        engine = create_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock=clock)

    def close(self) -> None:
        """Close every pooled connection; the Store reconnects if used again."""
        self.engine.dispose()

    def ping(self) -> None:
        """Return None if the database answers a query; raise :class:`StoreError` if not."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError as error:
            raise StoreError(self.engine.url, f"unreachable: {_reason(error)}") from error

    # --- reference profiles ----------------------------------------------------------------

    def save_profile(
        self,
        model: str,
        profile: bytes,
        *,
        model_version: str | None = None,
        effective_from: float | None = None,
    ) -> int:
        """Store ``profile`` as the next version of ``model``'s reference; return that version.

        ``model_version`` is the model version the reference describes;
        ``effective_from`` the start of the first window to use it (None: from
        the start). To take effect after the data already consumed, use
        :meth:`save_profile_after_progress`.
        """
        return self._insert_profile(
            model, profile, model_version, lambda _connection: effective_from
        ).version

    def save_profile_after_progress(
        self,
        model: str,
        profile: bytes,
        *,
        group_id: str,
        topic: str,
        next_window_start: Callable[[float], float],
        model_version: str | None = None,
    ) -> StoredProfileRow:
        """Store the next version of ``model``'s reference, in force after the consumed data.

        ``effective_from`` is ``next_window_start(frontier)``, the frontier being
        the largest stored ``max_event_time`` of ``topic``'s partitions for
        ``group_id``; None (from the start) while none has an event. Read in the
        insert's transaction, with the progress rows locked on PostgreSQL: a
        concurrent checkpoint commits either before (its events count) or after
        this reference is visible. Returns the stored row's metadata.
        """

        def frontier(connection: Connection) -> float | None:
            statement = select(PartitionProgress.max_event_time).where(
                PartitionProgress.group_id == group_id, PartitionProgress.topic == topic
            )
            if self._dialect == "postgresql":
                statement = statement.with_for_update()
            times = [t for t in connection.scalars(statement) if t is not None]
            return next_window_start(max(times)) if times else None

        return self._insert_profile(model, profile, model_version, frontier)

    def _insert_profile(
        self,
        model: str,
        profile: bytes,
        model_version: str | None,
        effective_from: Callable[[Connection], float | None],
    ) -> StoredProfileRow:
        for attempt in range(_PROFILE_ATTEMPTS):
            try:
                with self._writer.begin() as connection:
                    start = effective_from(connection)
                    latest = connection.scalar(
                        select(func.max(ReferenceProfile.version)).where(
                            ReferenceProfile.model == model
                        )
                    )
                    row = StoredProfileRow(
                        version=(latest or 0) + 1,
                        model_version=model_version,
                        effective_from=start,
                        created_at=self.clock(),
                    )
                    connection.execute(
                        _sql.insert(self._dialect, ReferenceProfile).values(
                            model=model,
                            version=row.version,
                            created_at=row.created_at,
                            profile=profile,
                            model_version=model_version,
                            effective_from=start,
                        )
                    )
                return row
            except IntegrityError:
                if attempt == _PROFILE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def profiles_since(self, model: str, after_version: int = 0) -> list[StoredProfileRow]:
        """Return metadata of ``model``'s profile versions after ``after_version``, oldest first.

        No profile bytes: every process polls this to notice new references.
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    ReferenceProfile.version,
                    ReferenceProfile.model_version,
                    ReferenceProfile.effective_from,
                    ReferenceProfile.created_at,
                )
                .where(ReferenceProfile.model == model, ReferenceProfile.version > after_version)
                .order_by(ReferenceProfile.version)
            )
            return [
                StoredProfileRow(
                    version=row.version,
                    model_version=row.model_version,
                    effective_from=row.effective_from,
                    created_at=row.created_at,
                )
                for row in rows
            ]

    def profiles_since_many(
        self, after_versions: Mapping[str, int]
    ) -> dict[str, list[StoredProfileRow]]:
        """Return :meth:`profiles_since` of every model in ``after_versions``, in ONE query.

        ``after_versions`` maps model names to the newest version known; models
        without newer versions are absent. Every process polls this (at each
        checkpoint and evaluation round): one query per model was 500 queries
        per poll for a fleet of 500 models.
        """
        if not after_versions:
            return {}
        statement = select(
            ReferenceProfile.model,
            ReferenceProfile.version,
            ReferenceProfile.model_version,
            ReferenceProfile.effective_from,
            ReferenceProfile.created_at,
        )
        if len(after_versions) <= _IN_LIST_LIMIT:
            statement = statement.where(ReferenceProfile.model.in_(after_versions))
        # The newest known versions are mostly all alike (1): a lower bound prunes the rest.
        statement = statement.where(ReferenceProfile.version > min(after_versions.values()))
        found: dict[str, list[StoredProfileRow]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                statement.order_by(ReferenceProfile.model, ReferenceProfile.version)
            )
            for row in rows:
                known = after_versions.get(row.model)
                if known is None or row.version <= known:
                    continue
                found.setdefault(row.model, []).append(
                    StoredProfileRow(
                        version=row.version,
                        model_version=row.model_version,
                        effective_from=row.effective_from,
                        created_at=row.created_at,
                    )
                )
        return found

    def profile_model_version(self, model: str, version: int) -> str | None:
        """Return the model version profile ``version`` of ``model`` describes (None: not given).

        One primary-key lookup of one short column; None also when that profile
        version is not stored.
        """
        with self.engine.connect() as connection:
            found: str | None = connection.scalar(
                select(ReferenceProfile.model_version).where(
                    ReferenceProfile.model == model, ReferenceProfile.version == version
                )
            )
        return found

    def latest_profile(self, model: str) -> tuple[int, bytes] | None:
        """Return ``(version, profile)`` of ``model``'s newest reference, or None if it has none."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(ReferenceProfile.version, ReferenceProfile.profile)
                .where(ReferenceProfile.model == model)
                .order_by(ReferenceProfile.version.desc())
                .limit(1)
            ).one_or_none()
        return None if row is None else (row.version, bytes(row.profile))

    def profile(self, model: str, version: int) -> bytes | None:
        """Return version ``version`` of ``model``'s reference profile, or None if absent."""
        with self.engine.connect() as connection:
            payload = connection.scalar(
                select(ReferenceProfile.profile).where(
                    ReferenceProfile.model == model, ReferenceProfile.version == version
                )
            )
        return None if payload is None else bytes(payload)

    # --- consumer state --------------------------------------------------------------------

    def checkpoint(
        self,
        group_id: str,
        partials: Sequence[PartialRow],
        progress: Sequence[ProgressRow],
        *,
        expected: Mapping[TopicPartitionKey, int | None] | None = None,
        seen_versions: Mapping[str, int] | None = None,
    ) -> None:
        """Replace the given partial sketches and partition offsets in ONE transaction.

        Either every row is written or, if anything fails, none is: the stored
        partials always cover exactly the records before the stored offsets.
        Of several rows with the same key, the last one counts.

        Fencing: with ``expected`` (``{(topic, partition): next_offset}``, None
        for "no row yet"), the transaction first checks, with the rows locked,
        that each listed partition's stored offset is still the one the caller
        last loaded or wrote. If another consumer has written one since (the
        caller was evicted from the group and is a zombie), nothing is written
        and :class:`StaleCheckpointError` names those partitions.

        References: with ``seen_versions`` (per model, the newest reference
        version the writer knows), a partial of a window for which a newer
        version is in force (``effective_from`` at or before the window's
        start) is refused with :class:`StaleReferenceError`, nothing written.
        The check runs after the fencing locks, which a reference being stored
        also takes, so a reference stored between the writer's last look and
        this transaction cannot slip through.
        """
        now = self.clock()
        progress_values = _sql.last_per_key(
            (_sql.values(row, group_id=group_id, updated_at=now) for row in progress),
            _sql.primary_key(PartitionProgress),
        )
        partial_values = _sql.last_per_key(
            (_sql.values(row, updated_at=now) for row in partials), _sql.primary_key(Partial)
        )
        began = time.perf_counter()
        with self._writer.begin() as connection:
            if expected:
                self._fence(connection, group_id, expected)
            if seen_versions and partials:
                self._check_references(connection, partials, seen_versions)
            if progress_values:
                connection.execute(_sql.upsert(self._dialect, PartitionProgress), progress_values)
            if partial_values:
                self._upsert_partials(connection, partial_values)
        if self.checkpoint_observer is not None:
            payload = sum(len(row["sketch"]) for row in partial_values)
            self.checkpoint_observer(len(partial_values), payload, time.perf_counter() - began)

    def _upsert_partials(self, connection: Connection, rows: list[dict[str, object]]) -> None:
        """Insert or replace partial rows: one statement per checkpoint on PostgreSQL.

        A checkpoint of a fleet writes one row per (model, window, partition):
        thousands. An executemany runs the statement once per row on the
        server; ``unnest`` of one array per column inserts them all in one
        execution of one cached statement (measured in docs/capacity.md).
        """
        if self._dialect != "postgresql":
            connection.execute(_sql.upsert(self._dialect, Partial), rows)
            return
        columns = {name: [row[name] for row in rows] for name in _PARTIAL_COLUMNS}
        connection.execute(_PG_UPSERT_PARTIALS, columns)

    def _check_references(
        self,
        connection: Connection,
        partials: Sequence[PartialRow],
        seen_versions: Mapping[str, int],
    ) -> None:
        """Raise :class:`StaleReferenceError` if an unseen reference is in force for a partial."""
        models = {p.model for p in partials if p.model in seen_versions}
        if not models:
            return
        rows = connection.execute(
            select(
                ReferenceProfile.model, ReferenceProfile.version, ReferenceProfile.effective_from
            ).where(ReferenceProfile.model.in_(models))
        )
        unseen: dict[str, list[float]] = {}
        for row in rows:
            if row.version > seen_versions[row.model]:
                start = -math.inf if row.effective_from is None else row.effective_from
                unseen.setdefault(row.model, []).append(start)
        overtaken = {
            (p.model, p.window_start)
            for p in partials
            if any(start <= p.window_start for start in unseen.get(p.model, ()))
        }
        if overtaken:
            raise StaleReferenceError(overtaken)

    def _fence(
        self,
        connection: Connection,
        group_id: str,
        expected: Mapping[TopicPartitionKey, int | None],
    ) -> None:
        """Raise :class:`StaleCheckpointError` unless every stored offset is the expected one."""
        statement = select(
            PartitionProgress.topic, PartitionProgress.partition, PartitionProgress.next_offset
        ).where(
            PartitionProgress.group_id == group_id,
            PartitionProgress.topic.in_({topic for topic, _ in expected}),
        )
        if self._dialect == "postgresql":
            # Row locks: a concurrent checkpoint of the same partition waits for this one
            # and then sees its offset. (SQLite's BEGIN IMMEDIATE already serialises writers.)
            statement = statement.with_for_update()
        rows = connection.execute(statement)
        stored = {(row.topic, row.partition): row.next_offset for row in rows}
        stale = [key for key, offset in expected.items() if stored.get(key) != offset]
        if stale:
            raise StaleCheckpointError(stale)

    def register_partitions(self, group_id: str, rows: Sequence[ProgressRow]) -> None:
        """Insert progress rows for partitions that have none yet; existing rows are kept.

        A consumer assigned a partition that was never checkpointed registers it
        (offset 0, no event yet), so that every process computing watermarks
        knows the partition exists and waits for it.
        """
        if not rows:
            return
        now = self.clock()
        statement = _sql.insert(self._dialect, PartitionProgress).on_conflict_do_nothing(
            index_elements=_sql.primary_key(PartitionProgress)
        )
        with self._writer.begin() as connection:
            connection.execute(
                statement, [_sql.values(row, group_id=group_id, updated_at=now) for row in rows]
            )

    def progress_updated_at(self, group_id: str, topic: str) -> dict[int, float]:
        """Return ``{partition: time its progress row was last written}`` for ``group_id``.

        A consumer rewrites the rows of the partitions it has caught up on at
        every checkpoint, so an old time means no live consumer is attending
        the partition (it died, or it has not caught up yet).
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(PartitionProgress.partition, PartitionProgress.updated_at).where(
                    PartitionProgress.group_id == group_id, PartitionProgress.topic == topic
                )
            )
            return {row.partition: row.updated_at for row in rows}

    def progress(self, group_id: str, topic: str) -> dict[int, ProgressRow]:
        """Return ``{partition: progress}`` of ``topic``'s partitions stored for ``group_id``."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                _sql.select_as(PartitionProgress, ProgressRow).where(
                    PartitionProgress.group_id == group_id, PartitionProgress.topic == topic
                )
            )
            return {row.partition: row for row in _sql.build(ProgressRow, rows)}

    def partials_for_partition(
        self, topic: str, partition: int, since_window_start: float | None = None
    ) -> list[PartialRow]:
        """Return every model's partials of one partition, by model and window start.

        With ``since_window_start``, only windows starting at or after it: a
        consumer assigned the partition reloads the windows still open.
        """
        statement = _sql.select_as(Partial, PartialRow).where(
            Partial.topic == topic, Partial.partition == partition
        )
        if since_window_start is not None:
            statement = statement.where(Partial.window_start >= since_window_start)
        with self.engine.connect() as connection:
            rows = connection.execute(statement.order_by(Partial.model, Partial.window_start))
            return _sql.build(PartialRow, rows)

    def partials_for_window(self, model: str, window_start: float) -> list[PartialRow]:
        """Return the partials of every partition of one window, by topic and partition."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                _sql.select_as(Partial, PartialRow)
                .where(Partial.model == model, Partial.window_start == window_start)
                .order_by(Partial.topic, Partial.partition)
            )
            return _sql.build(PartialRow, rows)

    # --- window evaluation -----------------------------------------------------------------

    def open_windows(self, model: str, up_to_end: float) -> list[tuple[float, float]]:
        """Return ``(start, end)`` of ``model``'s windows with partials that are due and not done.

        Due means ``end <= up_to_end`` (the watermark); done means a claim with
        status ``"done"``. Ordered by start.
        """
        done = exists().where(
            WindowClaim.model == Partial.model,
            WindowClaim.window_start == Partial.window_start,
            WindowClaim.status == DONE,
        )
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Partial.window_start, Partial.window_end)
                .where(Partial.model == model, Partial.window_end <= up_to_end, ~done)
                .distinct()
                .order_by(Partial.window_start)
            )
            return [(row.window_start, row.window_end) for row in rows]

    def due_windows(self, marks: Mapping[str, float]) -> dict[str, list[tuple[float, float]]]:
        """Return, per model, :meth:`open_windows` up to its mark in ``marks``, in ONE query.

        ``marks`` maps model names to watermarks (``math.inf``: every window);
        models without windows due are absent. Windows are ordered by start.
        """
        if not marks:
            return {}
        done = exists().where(
            WindowClaim.model == Partial.model,
            WindowClaim.window_start == Partial.window_start,
            WindowClaim.status == DONE,
        )
        statement = select(Partial.model, Partial.window_start, Partial.window_end).where(~done)
        highest = max(marks.values())
        if math.isfinite(highest):
            statement = statement.where(Partial.window_end <= highest)
        if len(marks) <= _IN_LIST_LIMIT:
            statement = statement.where(Partial.model.in_(marks))
        due: dict[str, list[tuple[float, float]]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                statement.distinct().order_by(Partial.model, Partial.window_start)
            )
            for row in rows:
                mark = marks.get(row.model)
                if mark is not None and row.window_end <= mark:
                    due.setdefault(row.model, []).append((row.window_start, row.window_end))
        return due

    def claim_window(
        self, model: str, window_start: float, window_end: float, owner: str, stale_after_s: float
    ) -> bool:
        """Try to become the one evaluator of a window; return True if this call won.

        The first caller inserts the claim row and wins; every later caller
        loses, unless the claim is still ``"claimed"`` (not done) and older
        than ``stale_after_s``: its owner died mid-evaluation, and exactly one
        caller takes it over. Safe against concurrent threads and processes.
        """
        now = self.clock()
        with self._writer.begin() as connection:
            # ON CONFLICT DO NOTHING: a concurrent insert of the same key waits for the
            # other transaction and then inserts nothing, without an error to handle.
            inserted = connection.execute(
                _sql.insert(self._dialect, WindowClaim)
                .values(
                    model=model,
                    window_start=window_start,
                    window_end=window_end,
                    owner=owner,
                    claimed_at=now,
                    status=CLAIMED,
                )
                .on_conflict_do_nothing(index_elements=_sql.primary_key(WindowClaim))
                # SQLAlchemy keeps the rowcount of an INSERT only when asked to.
                .execution_options(preserve_rowcount=True)
            )
            won = inserted.rowcount == 1
        if won:
            return True
        key = (WindowClaim.model == model, WindowClaim.window_start == window_start)
        with self._writer.begin() as connection:
            claim = connection.execute(
                select(WindowClaim.owner, WindowClaim.claimed_at, WindowClaim.status).where(*key)
            ).one_or_none()
            if claim is None or claim.status != CLAIMED or now - claim.claimed_at < stale_after_s:
                return False
            # Compare-and-set: of several callers taking over the same stale claim, only
            # the first UPDATE still finds the old owner and time.
            taken = connection.execute(
                update(WindowClaim)
                .where(
                    *key,
                    WindowClaim.owner == claim.owner,
                    WindowClaim.claimed_at == claim.claimed_at,
                    WindowClaim.status == CLAIMED,
                )
                .values(owner=owner, claimed_at=now)
            )
            return taken.rowcount == 1

    def finish_window(
        self,
        model: str,
        window_start: float,
        summary: WindowSummaryRow,
        features: Sequence[FeatureResultRow],
    ) -> None:
        """Store a window's results and mark its claim done, in one transaction.

        Results stored earlier for the window are replaced (a re-evaluation
        after labels arrive overwrites them). A window finished without a claim
        gets a done claim with an empty owner. Raises ValueError if a row
        belongs to another window.
        """
        rows: Sequence[WindowSummaryRow | FeatureResultRow] = [summary, *features]
        for row in rows:
            if (row.model, row.window_start) != (model, window_start):
                raise ValueError(
                    f"finish_window({model!r}, {window_start}) got a row of "
                    f"({row.model!r}, {row.window_start})"
                )
        now = self.clock()
        summary_values = _sql.values(replace(summary, evaluated_at=now))
        summary_values["details"] = dict(summary.details)
        claim = _sql.insert(self._dialect, WindowClaim).values(
            model=model,
            window_start=window_start,
            window_end=summary.window_end,
            owner="",
            claimed_at=now,
            status=DONE,
            finished_at=now,
        )
        claim = claim.on_conflict_do_update(
            index_elements=_sql.primary_key(WindowClaim),
            set_={"status": DONE, "finished_at": now},
        )
        with self._writer.begin() as connection:
            connection.execute(
                delete(FeatureResult).where(
                    FeatureResult.model == model, FeatureResult.window_start == window_start
                )
            )
            if features:
                connection.execute(
                    _sql.insert(self._dialect, FeatureResult),
                    [_sql.values(row) for row in features],
                )
            connection.execute(_sql.upsert(self._dialect, WindowSummary), [summary_values])
            connection.execute(claim)

    def save_window_result(self, result: WindowResult) -> None:
        """Store an evaluated window's typed result (:func:`finish_window` of its mapped rows)."""
        summary, features = window_result_rows(result)
        self.finish_window(result.model, result.window_start, summary, features)

    # --- results ---------------------------------------------------------------------------

    def window_results(
        self, model: str, limit: int, before: float | None = None
    ) -> list[WindowResult]:
        """Return up to ``limit`` typed results of ``model``, newest window first (as summaries)."""
        return [
            window_result_from_rows(s, self.feature_results(model, s.window_start))
            for s in self.window_summaries(model, limit, before)
        ]

    def window_summaries(
        self, model: str, limit: int, before: float | None = None
    ) -> list[WindowSummaryRow]:
        """Return up to ``limit`` summaries of ``model``, newest window first.

        With ``before``, only windows starting before it: pass the last
        returned ``window_start`` to get the next page.
        """
        statement = _sql.select_as(WindowSummary, WindowSummaryRow).where(
            WindowSummary.model == model
        )
        if before is not None:
            statement = statement.where(WindowSummary.window_start < before)
        with self.engine.connect() as connection:
            rows = connection.execute(
                statement.order_by(WindowSummary.window_start.desc()).limit(limit)
            )
            return _sql.build(WindowSummaryRow, rows)

    def newest_window_starts(self, models: Collection[str]) -> dict[str, float]:
        """Return the start of each of ``models``' newest evaluated window, in ONE query.

        Models without a stored result are absent. Each model's maximum is a
        correlated subquery, an index lookup on the summaries' primary key,
        so the cost follows the number of models, not of stored windows.
        """
        if not models:
            return {}
        newest: dict[str, float] = {}
        names = sorted(models)
        with self.engine.connect() as connection:
            for at in range(0, len(names), _IN_LIST_LIMIT):
                chunk = names[at : at + _IN_LIST_LIMIT]
                listed = union_all(
                    *(select(literal(name, String()).label("model")) for name in chunk)
                ).subquery("listed")
                latest = (
                    select(func.max(WindowSummary.window_start))
                    .where(WindowSummary.model == listed.c.model)
                    .scalar_subquery()
                )
                for model, start in connection.execute(select(listed.c.model, latest)):
                    if start is not None:
                        newest[model] = start
        return newest

    def window_results_after(
        self, model: str, after: float | None, limit: int, *, inclusive: bool = False
    ) -> list[WindowResult]:
        """Return up to ``limit`` typed results of ``model`` starting after ``after``, oldest first.

        ``after`` None: from the first stored window; ``inclusive``: a window
        starting at ``after`` is included. The alert rules read windows this
        way, in event-time order.
        """
        statement = _sql.select_as(WindowSummary, WindowSummaryRow).where(
            WindowSummary.model == model
        )
        if after is not None:
            start = WindowSummary.window_start
            statement = statement.where(start >= after if inclusive else start > after)
        with self.engine.connect() as connection:
            rows = connection.execute(statement.order_by(WindowSummary.window_start).limit(limit))
            summaries = _sql.build(WindowSummaryRow, rows)
        return [
            window_result_from_rows(s, self.feature_results(model, s.window_start))
            for s in summaries
        ]

    def feature_results(self, model: str, window_start: float) -> list[FeatureResultRow]:
        """Return the per-feature results of one window, by feature and method."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                _sql.select_as(FeatureResult, FeatureResultRow)
                .where(FeatureResult.model == model, FeatureResult.window_start == window_start)
                .order_by(FeatureResult.feature, FeatureResult.method)
            )
            return _sql.build(FeatureResultRow, rows)

    def models(self) -> list[str]:
        """Return the names of the models that have a reference profile or results, sorted."""
        with self.engine.connect() as connection:
            names = connection.scalars(
                select(ReferenceProfile.model).union(select(WindowSummary.model))
            )
            return sorted(names)

    # --- predictions and labels ------------------------------------------------------------

    def save_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Store predictions for label joins; a request id already stored keeps its first row."""
        if not rows:
            return
        now = self.clock()
        statement = _sql.insert(self._dialect, Prediction).on_conflict_do_nothing(
            index_elements=_sql.primary_key(Prediction)
        )
        with self._writer.begin() as connection:
            connection.execute(statement, [_sql.values(row, stored_at=now) for row in rows])

    def save_labels(self, rows: Sequence[LabelRow]) -> None:
        """Store true labels; a label received again for a request replaces the earlier one."""
        if not rows:
            return
        now = self.clock()
        values = _sql.last_per_key(
            (_sql.values(row, received_at=now) for row in rows), _sql.primary_key(Label)
        )
        with self._writer.begin() as connection:
            connection.execute(_sql.upsert(self._dialect, Label), values)

    def joined(self, model: str, window_start: float, window_end: float) -> list[JoinedPrediction]:
        """Return ``(predicted_label, score, label)`` of the window's labelled predictions.

        The window's predictions are those with ``window_start <= event_time <
        window_end`` (so hopping windows share them); ordered by event time.
        """
        return [row for _, row in self.joined_with_times(model, window_start, window_end)]

    def joined_with_times(
        self, model: str, window_start: float, window_end: float
    ) -> list[tuple[float, JoinedPrediction]]:
        """Return :meth:`joined`'s rows, each with its prediction's event time, in one query."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    Prediction.event_time,
                    Prediction.label,
                    Prediction.score,
                    Label.label.label("true_label"),
                )
                .join(
                    Label,
                    (Label.model == Prediction.model) & (Label.request_id == Prediction.request_id),
                )
                .where(*_in_window(model, window_start, window_end))
                .order_by(Prediction.event_time, Prediction.request_id)
            )
            return [
                (row.event_time, JoinedPrediction(row.label, row.score, row.true_label))
                for row in rows
            ]

    def window_scores(self, model: str, window_start: float, window_end: float) -> list[float]:
        """Return the scores of the window's stored predictions, labelled or not.

        The window's predictions as in :meth:`joined`; those stored without a
        score are left out. Ordered by event time and request id.
        """
        return [score for _, score in self.scores_with_times(model, window_start, window_end)]

    def scores_with_times(
        self, model: str, window_start: float, window_end: float
    ) -> list[tuple[float, float]]:
        """Return ``(event_time, score)`` of :meth:`window_scores`' predictions, in one query."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Prediction.event_time, Prediction.score)
                .where(*_in_window(model, window_start, window_end), Prediction.score.is_not(None))
                .order_by(Prediction.event_time, Prediction.request_id)
            )
            return [(row.event_time, float(row.score)) for row in rows]

    def labelled_counts(self, model: str, since_event_time: float) -> dict[float, int]:
        """Return ``{prediction window_start: labelled predictions}`` of recent predictions.

        Counts ``model``'s predictions with ``event_time >= since_event_time``
        that have a label, grouped by the ``window_start`` stored with each
        prediction (its newest window); buckets without labels are absent. One
        grouped query: the evaluator uses it to notice labels that arrived late.
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Prediction.window_start, func.count())
                .select_from(Prediction)
                .join(
                    Label,
                    (Label.model == Prediction.model) & (Label.request_id == Prediction.request_id),
                )
                .where(Prediction.model == model, Prediction.event_time >= since_event_time)
                .group_by(Prediction.window_start)
            )
            return {float(row[0]): int(row[1]) for row in rows}

    def label_coverage(self, model: str, window_start: float, window_end: float) -> tuple[int, int]:
        """Return ``(labelled, total)``: how many of the window's predictions have a label."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(func.count(Label.request_id), func.count())
                .select_from(Prediction)
                .outerjoin(
                    Label,
                    (Label.model == Prediction.model) & (Label.request_id == Prediction.request_id),
                )
                .where(*_in_window(model, window_start, window_end))
            ).one()
        return int(row[0]), int(row[1])

    def delete_partials_before(self, model: str, cutoff_window_end: float) -> int:
        """Delete the partials of ``model``'s evaluated windows that ended before the cutoff.

        Only windows whose claim is done lose their partials: a window not yet
        evaluated keeps them whatever its age. Results, claims and offsets
        are not touched. Returns the number of partial rows deleted.
        """
        with self._writer.begin() as connection:
            deleted = connection.execute(
                delete(Partial).where(
                    Partial.model == model,
                    Partial.window_end < cutoff_window_end,
                    _evaluated_before(model, cutoff_window_end),
                )
            )
            return int(deleted.rowcount)

    def delete_results_before(self, model: str, cutoff_window_end: float) -> int:
        """Delete ``model``'s window results (summaries, feature rows) that ended before the cutoff.

        Claims of those windows go too, but only once the window has no
        partials left: a done claim is what stops a window that still has
        partials from being evaluated again. Returns the number of rows
        deleted (summaries, feature rows and claims).
        """
        old = select(WindowSummary.window_start).where(
            WindowSummary.model == model, WindowSummary.window_end < cutoff_window_end
        )
        with_partials = select(Partial.window_start).where(
            Partial.model == model, Partial.window_end < cutoff_window_end
        )
        with self._writer.begin() as connection:
            features = connection.execute(
                delete(FeatureResult).where(
                    FeatureResult.model == model, FeatureResult.window_start.in_(old)
                )
            ).rowcount
            summaries = connection.execute(
                delete(WindowSummary).where(
                    WindowSummary.model == model, WindowSummary.window_end < cutoff_window_end
                )
            ).rowcount
            claims = connection.execute(
                delete(WindowClaim).where(
                    WindowClaim.model == model,
                    WindowClaim.status == DONE,
                    WindowClaim.window_end < cutoff_window_end,
                    WindowClaim.window_start.not_in(with_partials),
                )
            ).rowcount
        return int(features) + int(summaries) + int(claims)

    def delete_older_than(self, model: str, cutoff_event_time: float) -> int:
        """Delete ``model``'s predictions and labels with event time before the cutoff.

        Labels of deleted predictions go too, whatever their own time. Partials
        and offsets are not touched. Returns the number of rows deleted
        (predictions plus labels).
        """
        old_predictions = select(Prediction.request_id).where(
            Prediction.model == model, Prediction.event_time < cutoff_event_time
        )
        with self._writer.begin() as connection:
            labels = connection.execute(
                delete(Label).where(
                    Label.model == model,
                    or_(
                        Label.event_time < cutoff_event_time,
                        Label.request_id.in_(old_predictions),
                    ),
                )
            )
            predictions = connection.execute(
                delete(Prediction).where(
                    Prediction.model == model, Prediction.event_time < cutoff_event_time
                )
            )
            # rowcount is only known while the cursor is open, before the commit.
            return int(labels.rowcount) + int(predictions.rowcount)


_PARTIAL_COLUMNS = (
    "model",
    "window_start",
    "window_end",
    "topic",
    "partition",
    "sketch",
    "rows",
    "updated_at",
)
_PG_UPSERT_PARTIALS = text(
    'INSERT INTO partials (model, window_start, window_end, topic, "partition", sketch, '
    '"rows", updated_at) '
    "SELECT * FROM unnest(CAST(:model AS varchar[]), CAST(:window_start AS float8[]), "
    "CAST(:window_end AS float8[]), CAST(:topic AS varchar[]), CAST(:partition AS int[]), "
    "CAST(:sketch AS bytea[]), CAST(:rows AS int[]), CAST(:updated_at AS float8[])) "
    'ON CONFLICT (model, window_start, topic, "partition") DO UPDATE SET '
    'window_end = EXCLUDED.window_end, sketch = EXCLUDED.sketch, "rows" = EXCLUDED."rows", '
    "updated_at = EXCLUDED.updated_at"
)


def _evaluated_before(model: str, cutoff_window_end: float) -> ColumnElement[bool]:
    """Partials of ``model``'s windows evaluated (claim done) that ended before the cutoff."""
    evaluated = select(WindowClaim.window_start).where(
        WindowClaim.model == model,
        WindowClaim.status == DONE,
        WindowClaim.window_end < cutoff_window_end,
    )
    return Partial.window_start.in_(evaluated)


def _in_window(
    model: str, window_start: float, window_end: float
) -> tuple[ColumnElement[bool], ...]:
    return (
        Prediction.model == model,
        Prediction.event_time >= window_start,
        Prediction.event_time < window_end,
    )


def _reason(error: SQLAlchemyError) -> str:
    cause = getattr(error, "orig", None)
    return " ".join(str(cause if cause is not None else error).split())
