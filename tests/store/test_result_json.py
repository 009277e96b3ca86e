"""The store's mapper: a window's typed result survives the database unchanged.

The evaluator publishes a :class:`~detectors.window_result.WindowResult`; the
store writes it through :mod:`monitor.store.result_json` and
:meth:`~monitor.store.Store.window_results` reads it back. Whatever a reader
of the stored history sees (the demo, alert backtests, the alerting layer's
rule cursor) must be what the evaluator computed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from detectors.window_result import AnalysisError, JointDrift, WindowResult
from monitor.service.replay import replay
from monitor.store import Store
from monitor.store.result_json import (
    window_details,
    window_result_from_rows,
    window_result_rows,
)
from tests.service.test_joint_and_attribution import (
    T0,
    configured,
    correlated,
    window_frames,
    write_log,
)


def same(stored: WindowResult, computed: WindowResult) -> None:
    """Assert two results agree on everything stored (NaN equal to NaN)."""
    assert window_details(stored) == window_details(computed)
    assert (stored.model, stored.window_start, stored.window_end, stored.rows) == (
        computed.model,
        computed.window_start,
        computed.window_end,
        computed.rows,
    )
    assert stored.status == computed.status
    if computed.drift is None:
        assert stored.drift is None
    else:
        assert stored.drift is not None
        assert stored.drift.to_dict() == computed.drift.to_dict()
        for a, b in zip(stored.drift.features, computed.drift.features, strict=True):
            assert a.severity == b.severity or (math.isnan(a.severity) and math.isnan(b.severity))


def test_a_replayed_windows_results_read_back_from_the_store_are_the_computed_ones(tmp_path):
    section = {"methods": ["mmd"], "reference_rows": 800, "current_rows": 400, "alpha": 0.01}
    config = configured(
        tmp_path, {"multivariate": section}, correlated(3000, 0.9, np.random.default_rng(1))
    )
    log = tmp_path / "log.jsonl"
    write_log(log, window_frames(rho_after=0.0))
    computed = {r.window_start: r for r in replay(config, log).windows}
    store = Store.connect(config.database_url())
    try:
        stored = {r.window_start: r for r in store.window_results("joint", limit=100)}
    finally:
        store.close()
    assert sorted(stored) == sorted(computed)
    for start, result in computed.items():
        same(stored[start], result)
    # Typed reads on the stored side, as the alerting layer makes them.
    last = stored[T0 + 5 * 60]
    assert isinstance(last.joint_drift, JointDrift)
    assert last.joint_drift.flagged == ("mmd",)
    assert last.drift is not None
    assert [f.name for f in last.drift.features] == ["x", "y", "z", "region"]


def test_a_window_of_too_few_rows_and_an_analysis_error_round_trip():
    result = WindowResult(
        model="m",
        window_start=T0,
        window_end=T0 + 60,
        rows=3,
        status="insufficient_data",
        profile_version=2,
        labelled=1,
        predictions_stored=3,
        joint_drift=AnalysisError(message="no row sample"),
        attribution=AnalysisError(message="no explanations", source="explanations"),
    )
    summary, features = window_result_rows(result)
    assert features == []
    assert summary.details["multivariate"] == {"error": "no row sample"}
    assert summary.details["attribution"] == {"error": "no explanations", "source": "explanations"}
    assert summary.details["drift_impact"] == []
    assert window_result_from_rows(summary, features) == result


def test_feature_rows_stored_before_materiality_read_as_they_meant_then(tmp_path):
    """Rows from before migration 0004 hold only ``drift``: detectable = drift, material."""
    config = configured(tmp_path, {}, correlated(3000, 0.9, np.random.default_rng(2)))
    log = tmp_path / "log.jsonl"
    write_log(log, window_frames(rho_after=0.0))
    result = next(r for r in replay(config, log).windows if r.drift is not None)
    summary, rows = window_result_rows(result)
    assert all(isinstance(r.detectable, bool) and isinstance(r.material, bool) for r in rows)
    old = [
        dataclasses.replace(
            r, detectable=None, material=None, effect_size_lower=None, min_effect_size=None
        )
        for r in rows
    ]
    read = window_result_from_rows(summary, old).drift
    assert read is not None
    for feature in read.features:
        assert feature.detectable == feature.drift
        assert feature.material is True
        assert math.isnan(feature.effect_size_lower)
        assert feature.min_effect_size == 0.0
