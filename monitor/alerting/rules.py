"""The alert rules over the stored windows: in event-time order, exactly once, into the outbox.

Windows are evaluated by several processes, out of event-time order, and
again when late labels arrive; alert rules need them in order, once each.
So the rules do not subscribe to evaluations: each model has a *rule cursor*
in the database, the start of the last window its rules consumed.
:meth:`AlertRules.advance` reads the evaluated windows after the cursor, oldest
first, and feeds them to :class:`alerts.engine.RuleEngine` from the stored rule
states, stopping before the first window that is not final yet:

* a window with partials but no result (not yet due, or being evaluated)
  holds back every window after it, so an earlier window is never skipped;
* for a model whose rules read labels (``quality`` rules, ``change_point``
  rules on the ``error`` stream) and whose labels are enabled, a window is
  consumed only once it ended ``labels.max_delay`` before the watermark, so
  its quality is final. This delays that model's drift alerts by the same
  amount; models without such rules (the defaults) alert as soon as a
  window is evaluated.

The new states, the incidents, the events and their outbox rows are written
in the transaction that moves the cursor, with compare-and-set on its old
position (:meth:`monitor.store.AlertStore.advance`). Two processes doing the
same work compute the same events with the same ids (derived from model,
rule, subject, incident, type and repeat number); only one commits, the
other's transaction is rolled back and it reads the new cursor next time. A
process killed before the commit leaves nothing; the work is redone.

Re-evaluations. A window already consumed is not fed again when late labels
change its result: history is not rewritten (an incident already notified is
not retracted). The windows after it carry the change. Hence the label wait
above for rules that read labels.

The model-version loop. Each window names the reference profile it was
evaluated on, and each stored reference may name the model version it
describes (``driftline reference build --model-version``). When the windows
move to a reference of another model version -- the new model was deployed
and its reference stored, so its windows are evaluated against it -- the
old version's open incidents resolve with reason ``model_replaced`` before
the first such window is fed to the rules, and the open retraining request
counts as answered. While a retraining request is open (sent, not answered,
younger than ``alerts.retrain_pending_s`` of event time), another incident
asking to retrain sends no second ``retrain.requested``: it is logged and
the incident still notifies. A new reference of the *same* model version
(re-baselining) is not a replacement. This bookkeeping is kept with the rule
states under the reserved rule name :data:`LOOP_RULE`.

Per event type, the targets (:mod:`alerts.targets`): ``webhook`` targets that
accept the type, ``alertmanager`` targets for every event but
``retrain.requested``, ``retrain`` targets for ``retrain.requested`` only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alerts.engine import Emission, RuleEngine, RuleState, WindowOrderError
from alerts.events import AlertEvent, EventType, event_id
from alerts.rules import ChangePointRule, QualityRule, Rule
from alerts.targets import AlertmanagerTarget, RetrainTarget, Target, WebhookTarget
from detectors.window_result import WindowResult
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.store.alerting import AlertStore, event_row, incident_key
from monitor.store.rows import IncidentRow

log = logging.getLogger(__name__)

#: Event types that open (or repeat) an incident, as opposed to resolving it or retraining.
FIRING_TYPES = frozenset(
    {EventType.DRIFT_DETECTED, EventType.QUALITY_DEGRADED, EventType.DATA_QUALITY_FAILED}
)


#: The reserved rule name under which a model's model-version loop state is stored.
LOOP_RULE = "__model_loop__"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoop:
    """Which reference (and model version) the last window used; when retraining was asked.

    ``retrain_since`` is the window end of the open retraining request (None:
    none open).
    """

    profile_version: int | None = None
    model_version: str | None = None
    retrain_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored with the rule states."""
        return {
            "profile_version": self.profile_version,
            "model_version": self.model_version,
            "retrain_since": self.retrain_since,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelLoop:
        """Read :meth:`to_json` (unknown keys ignored)."""
        version = data.get("profile_version")
        since = data.get("retrain_since")
        model_version = data.get("model_version")
        return cls(
            profile_version=None if version is None else int(version),
            model_version=None if model_version is None else str(model_version),
            retrain_since=None if since is None else float(since),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Advance:
    """What one :meth:`AlertRules.advance` did for one model.

    ``windows`` are the window starts fed to the rules; ``events`` the events
    created; ``committed`` is false when another process moved the cursor first
    (nothing was written).
    """

    model: str
    windows: tuple[float, ...]
    events: tuple[AlertEvent, ...]
    committed: bool


def reads_labels(rules: Sequence[Rule]) -> bool:
    """Whether any of ``rules`` reads the window's labels (measured quality, error changes)."""
    return any(
        isinstance(r, QualityRule)
        or (isinstance(r, ChangePointRule) and r.stream in (None, "error"))
        for r in rules
        if r.enabled
    )


def targets_for(event_type: EventType, targets: Sequence[Target]) -> tuple[str, ...]:
    """The names of the targets an event of ``event_type`` is queued for (module docstring)."""
    chosen = []
    for target in targets:
        if isinstance(target, WebhookTarget):
            wanted = target.accepts(event_type)
        elif isinstance(target, AlertmanagerTarget):
            wanted = event_type is not EventType.RETRAIN_REQUESTED
        else:
            assert isinstance(target, RetrainTarget)
            wanted = event_type is EventType.RETRAIN_REQUESTED
        if wanted:
            chosen.append(target.name)
    return tuple(chosen)


class AlertRules:
    """Feeds each model's evaluated windows to its rules, in order, once (module docstring).

    ``watermarks`` gives every model's watermark (the evaluator's
    :meth:`~monitor.streaming.evaluate.Evaluator.watermarks`, one progress
    read), needed only for models whose rules read labels; ``watermark`` (one
    model's) is its per-model form, used when ``watermarks`` is not given.
    ``batch`` bounds the windows read per call.

    A round (:meth:`run_once`) costs two queries for the whole fleet when no
    model has a new window (every cursor, every model's newest window), plus
    one for every model's open windows and one progress read when some have.
    """

    def __init__(
        self,
        config: ServiceConfig,
        store: Store,
        alert_store: AlertStore,
        *,
        metrics: Metrics | None = None,
        watermark: Callable[[str], float | None] | None = None,
        watermarks: Callable[[], Mapping[str, float]] | None = None,
        clock: Callable[[], float] = time.time,
        batch: int = 200,
    ) -> None:
        self.config = config
        self.store = store
        self.alert_store = alert_store
        self.metrics = metrics
        self.watermark = watermark
        self.watermarks = watermarks
        self.clock = clock
        self.batch = batch
        self._engines = {m.name: RuleEngine(m.alerts.effective) for m in config.models}
        self._model_versions: dict[tuple[str, int], str | None] = {}

    def run_once(self) -> list[Advance]:
        """Advance every model's rules over its newly final windows; return what was done."""
        if not self.config.alerts.enabled:
            return []
        models = [m for m in self.config.models if self._engines[m.name].rules]
        if not models:
            return []
        positions = self.alert_store.cursors()
        newest = self.store.newest_window_starts([m.name for m in models])
        active = [m for m in models if _has_new(newest.get(m.name), positions.get(m.name))]
        names = {m.name for m in active}
        # Open windows are read BEFORE the results (in advance): a window evaluated in
        # between is then either still blocking or among the results, never skipped.
        pending = self.store.due_windows(dict.fromkeys((m.name for m in active), math.inf))
        marks: Mapping[str, float] | None = None
        if self.watermarks is not None and any(self._reads_labels(m) for m in active):
            marks = self.watermarks()
        done = []
        for model in models:
            if model.name in names:
                known = _Known(positions.get(model.name), pending.get(model.name, []), marks)
                done.append(self.advance(model, known))
            else:
                done.append(Advance(model=model.name, windows=(), events=(), committed=True))
        return done

    def advance(self, model: ModelConfig, known: _Known | None = None) -> Advance:
        """Feed ``model``'s final windows after its cursor to its rules and store the outcome.

        ``known`` carries what :meth:`run_once` read for the whole fleet (the
        cursor, the open windows, the watermarks); None reads them for this model.
        """
        name, engine = model.name, self._engines[model.name]
        if known is None:
            position = self.alert_store.cursor(name)
            pending = self.store.open_windows(name, math.inf)
            known = _Known(position, pending, None)
        position = known.position
        windows = self._final_windows(model, engine, known)
        if not windows:
            return Advance(model=name, windows=(), events=(), committed=True)
        stored = self.alert_store.states(name)
        loop_key = (name, LOOP_RULE, "")
        loop = ModelLoop.from_json(stored.pop(loop_key, {}))
        states = {key: RuleState.from_json(value) for key, value in stored.items()}
        events: list[AlertEvent] = []
        incidents: dict[str, IncidentRow] = {}
        now = self.clock()
        pending_for = self.config.alerts.retrain_pending_s
        for result in windows:
            before_switch = before = states
            replaced: list[Emission] = []
            loop, switched = self._loop(name, loop, result)
            if switched:
                states, replaced = engine.resolve_model(states, name, "model_replaced")
                loop = replace(loop, retrain_since=None)  # the new model answers the request
                before = states
            try:
                states, emissions = engine.step(states, result)
            except WindowOrderError as error:  # a stored state ahead of the cursor: skip it
                log.warning(
                    "alert rules of %s skip window %s: %s", name, result.window_start, error
                )
                continue
            for emission in replaced:
                key = (emission.model, emission.rule, emission.subject)
                row = _incident_row(emission, before_switch.get(key), before[key], engine)
                events.append(self._event(emission, now, row.started_window_start))
                incidents[row.id] = _merged(incidents.get(row.id), row)
            for emission in emissions:
                if emission.type == EventType.RETRAIN_REQUESTED.value:
                    open_since = loop.retrain_since
                    if open_since is not None and emission.window_end - open_since < pending_for:
                        log.info(
                            "alert rules of %s: no second retraining request for %s [%s] "
                            "while the one of %s is open",
                            name,
                            emission.rule,
                            emission.subject,
                            open_since,
                        )
                        continue
                    loop = replace(loop, retrain_since=emission.window_end)
                key = (emission.model, emission.rule, emission.subject)
                row = _incident_row(emission, before.get(key), states[key], engine)
                events.append(self._event(emission, now, row.started_window_start))
                incidents[row.id] = _merged(incidents.get(row.id), row)
        # Incidents still firing after the batch, as of the last window (once, not per window).
        for state in states.values():
            if state.status == "firing" and state.incident is not None:
                row = _firing_row(state, engine)
                incidents[row.id] = _merged(incidents.get(row.id), row)
        rows = [event_row(e, targets_for(e.type, self.config.alerts.targets)) for e in events]
        committed = self.alert_store.advance(
            name,
            position,
            windows[-1].window_start,
            {**{key: state.to_json() for key, state in states.items()}, loop_key: loop.to_json()},
            list(incidents.values()),
            rows,
        )
        if committed:
            self._count(events)
            for event in events:
                log.info(
                    "alert %s %s %s%s: %s",
                    event.type.value,
                    name,
                    event.rule,
                    f" [{event.subject}]" if event.subject else "",
                    event.summary,
                )
        return Advance(
            model=name,
            windows=tuple(w.window_start for w in windows),
            events=tuple(events),
            committed=committed,
        )

    def _loop(self, name: str, loop: ModelLoop, result: WindowResult) -> tuple[ModelLoop, bool]:
        """The loop state after ``result``; True when a new model version's reference took over."""
        version = result.profile_version
        if version is None or version == loop.profile_version:
            return loop, False
        model_version = self._model_version(name, version)
        switched = (
            loop.profile_version is not None
            and model_version is not None
            and model_version != loop.model_version
        )
        if switched:
            log.info(
                "model %s: version %s took over from %s at window %s (reference %d)",
                name,
                model_version,
                loop.model_version,
                result.window_start,
                version,
            )
        return replace(loop, profile_version=version, model_version=model_version), switched

    def _model_version(self, name: str, version: int) -> str | None:
        key = (name, version)
        if key not in self._model_versions:
            self._model_versions[key] = self.store.profile_model_version(name, version)
        return self._model_versions[key]

    def _reads_labels(self, model: ModelConfig) -> bool:
        return model.labels.enabled and reads_labels(self._engines[model.name].rules)

    def _mark(self, name: str, marks: Mapping[str, float] | None) -> float | None:
        """``name``'s watermark: from the fleet's ``marks`` when read, else the per-model call."""
        if marks is not None:
            return marks.get(name)
        if self.watermark is not None:
            return self.watermark(name)
        if self.watermarks is not None:
            return self.watermarks().get(name)
        return None

    def _final_windows(
        self, model: ModelConfig, engine: RuleEngine, known: _Known
    ) -> list[WindowResult]:
        """The evaluated windows after the cursor that are final, oldest first."""
        name = model.name
        results = self.store.window_results_after(name, known.position, self.batch)
        if not results:
            return []
        blocked = known.pending[0][0] if known.pending else math.inf
        cutoff = math.inf
        if model.labels.enabled and reads_labels(engine.rules):
            mark = self._mark(name, known.marks)
            if mark is None:
                return []
            cutoff = mark - model.labels.max_delay
        final = []
        for result in results:
            if result.window_start >= blocked or result.window_end > cutoff:
                break
            final.append(result)
        return final

    def _event(self, emission: Emission, now: float, started: float) -> AlertEvent:
        """The event of ``emission``; ``details.started_at`` is its incident's first window."""
        kind = EventType(emission.type)
        details = {**emission.details, "started_at": started}
        return AlertEvent(
            id=event_id(
                emission.model,
                emission.rule,
                emission.subject,
                emission.incident,
                kind,
                emission.sequence,
            ),
            type=kind,
            model=emission.model,
            window_start=emission.window_start,
            window_end=emission.window_end,
            severity=emission.severity,
            rule=emission.rule,
            subject=emission.subject,
            incident=emission.incident,
            summary=emission.summary,
            details=details,
            created_at=now,
        )

    def _count(self, events: Sequence[AlertEvent]) -> None:
        """``driftline_alerts_total``: one per incident notification (first and repeats)."""
        if self.metrics is None:
            return
        for event in events:
            if event.type in FIRING_TYPES:
                self.metrics.alerts_total.labels(
                    model=event.model, rule=event.rule, severity=event.severity
                ).inc()


@dataclass(frozen=True)
class _Known:
    """What a round read once for the fleet, for one model: cursor, open windows, watermarks."""

    position: float | None
    pending: list[tuple[float, float]]
    marks: Mapping[str, float] | None


def _has_new(newest: float | None, position: float | None) -> bool:
    """True when a model's newest evaluated window starts after its cursor."""
    return newest is not None and (position is None or newest > position)


def _rule(engine: RuleEngine, name: str) -> Rule | None:
    return next((r for r in engine.rules if r.name == name), None)


def _firing_row(state: RuleState, engine: RuleEngine) -> IncidentRow:
    """The incident row of a firing state, as of the latest window the state saw."""
    assert state.incident is not None
    rule = _rule(engine, state.rule)
    return IncidentRow(
        id=incident_key(state.model, state.rule, state.subject, state.incident),
        model=state.model,
        rule=state.rule,
        subject=state.subject,
        severity=state.severity or "warning",
        status="firing",
        started_window_start=_finite(state.incident_started, state.last_window_start),
        last_window_end=_finite(state.last_window_end, 0.0),
        retrain_requested=bool(rule is not None and rule.retrain),
    )


def _incident_row(
    emission: Emission, before: RuleState | None, after: RuleState, engine: RuleEngine
) -> IncidentRow:
    """The incident row an emission implies (a resolution closes the incident of ``before``)."""
    if emission.type == EventType.ALERT_RESOLVED.value and before is not None:
        reason = str(emission.details.get("reason") or "clean_windows")
        return IncidentRow(
            id=incident_key(emission.model, emission.rule, emission.subject, emission.incident),
            model=emission.model,
            rule=emission.rule,
            subject=emission.subject,
            severity=emission.severity,
            status="resolved",
            started_window_start=_finite(before.incident_started, emission.window_start),
            last_window_end=emission.window_end,
            resolved_window_end=emission.window_end,
            reason=reason,
            retrain_requested=bool((rule := _rule(engine, emission.rule)) and rule.retrain),
        )
    return _firing_row(after, engine)


def _merged(old: IncidentRow | None, new: IncidentRow) -> IncidentRow:
    """The later of two rows of one incident (a resolution wins over a firing row)."""
    if old is not None and old.status == "resolved" and new.status == "firing":
        return old
    return new


def _finite(value: float | None, fallback: float | None) -> float:
    if value is not None and math.isfinite(value):
        return value
    return float(fallback) if fallback is not None else 0.0


__all__ = [
    "FIRING_TYPES",
    "LOOP_RULE",
    "Advance",
    "AlertRules",
    "ModelLoop",
    "reads_labels",
    "targets_for",
]
