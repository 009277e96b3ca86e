"""Backtests: replay alert rules over stored window history, from empty state.

:func:`backtest` feeds the windows to :class:`~alerts.engine.RuleEngine` in
event-time order (by ``window_end``, then ``window_start`` and model) exactly
as the service would have, and reports every emission and, per model and
rule, how often it breached, fired, repeated and resolved. It answers "what
would these rules have sent over the last month?" before a rule change is
deployed. Pure: the same history gives the same report.

The history holds one result per window. When it holds several for one
window of one model (a re-evaluation after late labels), the one evaluated
last (``evaluated_at``, else the later in the input) is used, matching a
store that keeps the latest result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.engine import Emission, RuleEngine, RuleState, StateKey
from alerts.rules import Rule, evaluate_rule
from detectors.window_result import WindowResult


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCounts:
    """One rule's tally for one model over the replayed windows.

    ``windows_breaching`` counts windows where at least one subject breached
    (``windows_unknown``: where no subject had a verdict but unknown);
    ``fired`` counts new incidents, ``repeats`` re-notifications,
    ``resolved`` resolutions and ``retrain`` retrain requests.
    """

    model: str
    rule: str
    windows: int
    windows_breaching: int
    windows_unknown: int
    fired: int
    repeats: int
    resolved: int
    retrain: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestReport:
    """What a backtest found: every emission in order, counts per (model, rule), final states.

    ``states`` are the rule states after the last window (still-firing
    incidents are those with status ``firing``).
    """

    windows: int
    emissions: tuple[Emission, ...]
    counts: tuple[RuleCounts, ...]
    states: dict[StateKey, RuleState]

    def counts_for(self, rule: str, model: str | None = None) -> RuleCounts:
        """Return the counts of ``rule`` (of ``model``, required when several were replayed)."""
        found = [c for c in self.counts if c.rule == rule and model in (None, c.model)]
        if len(found) != 1:
            raise KeyError((model, rule))
        return found[0]


def _history(results: Iterable[WindowResult]) -> list[WindowResult]:
    latest: dict[tuple[str, float, float], tuple[float, int, WindowResult]] = {}
    for i, r in enumerate(results):
        key = (r.model, r.window_start, r.window_end)
        rank = (float("-inf") if r.evaluated_at is None else r.evaluated_at, i)
        if key not in latest or rank >= latest[key][:2]:
            latest[key] = (*rank, r)
    chosen = [entry[2] for entry in latest.values()]
    return sorted(chosen, key=lambda r: (r.window_end, r.window_start, r.model))


def backtest(rules: Sequence[Rule], results: Iterable[WindowResult]) -> BacktestReport:
    """Replay ``rules`` over ``results`` (any order, any models) and return the report.

    Every model in ``results`` gets the same rules; disabled rules are skipped.
    """
    engine = RuleEngine(rules)
    states: dict[StateKey, RuleState] = {}
    emissions: list[Emission] = []
    tallies: dict[tuple[str, str], dict[str, int]] = {}
    windows = _history(results)
    for result in windows:
        for rule in engine.rules:
            verdicts = evaluate_rule(rule, result).values()
            tally = tallies.setdefault(
                (result.model, rule.name),
                dict.fromkeys(("windows", "breaching", "unknown"), 0),
            )
            tally["windows"] += 1
            tally["breaching"] += any(v.status == "breach" for v in verdicts)
            tally["unknown"] += all(v.status == "unknown" for v in verdicts)
        states, emitted = engine.step(states, result)
        emissions.extend(emitted)
    counts = []
    for (model, name), tally in sorted(tallies.items()):
        mine = [e for e in emissions if e.model == model and e.rule == name]
        counts.append(
            RuleCounts(
                model=model,
                rule=name,
                windows=tally["windows"],
                windows_breaching=tally["breaching"],
                windows_unknown=tally["unknown"],
                fired=sum(e.type not in _NOT_FIRING and e.sequence == 0 for e in mine),
                repeats=sum(e.type not in _NOT_FIRING and e.sequence > 0 for e in mine),
                resolved=sum(e.type == "alert.resolved" for e in mine),
                retrain=sum(e.type == "retrain.requested" for e in mine),
            )
        )
    return BacktestReport(
        windows=len(windows), emissions=tuple(emissions), counts=tuple(counts), states=states
    )


_NOT_FIRING = frozenset({"alert.resolved", "retrain.requested"})

__all__ = ["BacktestReport", "RuleCounts", "backtest"]
