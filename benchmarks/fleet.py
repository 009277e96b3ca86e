"""A synthetic fleet of models for the scale benchmark: configs, references and records.

A fleet is ``models`` models (``m0000``, ``m0001``, ...) with numeric features,
whose record traffic follows a Zipf law over the models (model ``k`` gets a
share proportional to ``1 / (k + 1) ** zipf_s``: a few models carry most of
it). Feature counts cycle through ``feature_mix`` (default: all ``features``),
so one run measures evaluation time at several feature counts. Every feature
of model ``k`` is a normal distribution with a model-specific mean; the
stream has no drift.

Records are produced round robin over the partitions and their event times
advance steadily over ``windows`` one-minute windows (plus up to
:data:`JITTER_S` of jitter), so every partition holds every model and
every window: the case where a checkpoint writes one partial per (model,
window, partition).

>>> spec = FleetSpec(models=4, features=3, partitions=2, records=100, windows=2)
>>> [model_name(k) for k in range(2)], spec.feature_count(1)
(['m0000', 'm0001'], 3)
>>> chunk = make_chunk(spec, partition=0, chunk=0, indices=range(0, 10, 2))
>>> len(chunk), sorted(orjson.loads(chunk[0][1])["features"])
(5, ['f00', 'f01', 'f02'])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Event time of the first record: 2026-11-22T09:00:00Z, aligned to one-minute windows.
T0 = 1_795_338_000.0
WINDOW_S = 60.0
JITTER_S = 2.0
#: Far more than the jitter: no record is late.
ALLOWED_LATENESS_S = 10.0
#: Records generated per random-generator seed (a chunk is reproducible on its own).
CHUNK = 10_000


@dataclass(frozen=True, kw_only=True)
class FleetSpec:
    """The fleet's shape: models, features per model, partitions, records, windows, skew.

    ``feature_mix`` (None: every model has ``features``) lists feature counts
    that the models cycle through (model ``k`` has ``feature_mix[k % len]``).
    """

    models: int = 500
    features: int = 30
    partitions: int = 12
    records: int = 1_000_000
    windows: int = 10
    zipf_s: float = 1.1
    seed: int = 0
    feature_mix: tuple[int, ...] | None = None

    def feature_count(self, model: int) -> int:
        """Return the number of features of model ``model`` (its index)."""
        if not self.feature_mix:
            return self.features
        return self.feature_mix[model % len(self.feature_mix)]

    def weights(self) -> np.ndarray:
        """Return each model's share of the traffic (Zipf-like, summing to 1)."""
        import numpy as np

        raw = 1.0 / np.arange(1, self.models + 1, dtype=np.float64) ** self.zipf_s
        return raw / raw.sum()

    def feature_windows(self) -> int:
        """Return the number of (model, window) pairs that get at least one record, roughly."""
        import numpy as np

        per_window = self.records / max(self.windows, 1)
        expected = 1.0 - np.exp(-self.weights() * per_window)
        return round(float(expected.sum()) * self.windows)


def model_name(model: int) -> str:
    """Return the name of model ``model`` (its index), e.g. ``m0007``."""
    return f"m{model:04d}"


def feature_names(count: int) -> list[str]:
    """Return the names of ``count`` features: ``f00``, ``f01``, ..."""
    return [f"f{j:02d}" for j in range(count)]


def _means(spec: FleetSpec, model: int) -> np.ndarray:
    import numpy as np

    rng = np.random.default_rng([spec.seed, 7, model])
    return rng.uniform(-5.0, 5.0, spec.feature_count(model))


def reference_frame(spec: FleetSpec, model: int, rows: int = 2_000) -> pd.DataFrame:
    """Return the reference (training) data of model ``model``: the stream's distributions."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([spec.seed, 11, model])
    means = _means(spec, model)
    values = rng.normal(means, 1.0, (rows, len(means)))
    frame = pd.DataFrame(values, columns=feature_names(len(means)))
    frame["prediction"] = rng.random(rows)
    return frame


def make_chunk(
    spec: FleetSpec, *, partition: int, chunk: int, indices: range, t0: float = T0
) -> list[tuple[bytes, bytes]]:
    """Return ``(key, value)`` of the records with global numbers ``indices`` (one partition).

    The content depends only on ``(spec, partition, chunk, t0)``. Record ``i``'s
    nominal event time is ``t0 + i / records`` of the ``windows`` minutes.
    """
    import numpy as np

    rng = np.random.default_rng([spec.seed, partition, chunk])
    rows = len(indices)
    models = rng.choice(spec.models, rows, p=spec.weights())
    nominal = np.asarray(indices, dtype=np.float64) * (spec.windows * WINDOW_S / spec.records)
    times = t0 + np.maximum(nominal + rng.uniform(-JITTER_S, JITTER_S, rows), 0.0)
    millis = (times * 1000).astype(np.int64).tolist()
    noise = np.round(rng.normal(0.0, 1.0, (rows, spec.features)), 4)
    scores = np.round(rng.random(rows), 4).tolist()
    means = {k: _means(spec, k) for k in np.unique(models).tolist()}
    names = feature_names(spec.features)
    out = []
    for j, k in enumerate(models.tolist()):
        count = len(means[k])
        values = (noise[j, :count] + means[k]).round(4).tolist()
        doc = {
            "model": model_name(k),
            "timestamp": millis[j],
            "features": dict(zip(names[:count], values, strict=True)),
            "prediction": scores[j],
        }
        out.append((f"r{indices[j]}".encode(), orjson.dumps(doc)))
    return out


def chunks_of(spec: FleetSpec, partition: int) -> Iterator[tuple[int, range]]:
    """Yield ``(chunk_number, indices)`` of ``partition``'s records, :data:`CHUNK` at a time."""
    indices = range(partition, spec.records, spec.partitions)
    for number, start in enumerate(range(0, len(indices), CHUNK)):
        yield number, indices[start : start + CHUNK]


CONFIG_HEAD = """\
broker:
  bootstrap_servers: ["{bootstrap}"]
topics:
  predictions: {topic}
  labels: {topic}-labels
  dead_letter: {topic}-dead
consumer:
  group_id: {group}
  session_timeout_ms: 6000
  heartbeat_interval_ms: 1000
  max_poll_records: {max_poll_records}
  checkpoint_interval_s: {checkpoint_interval}s
  checkpoint_records: {checkpoint_records}
  idle_timeout_s: {idle_timeout}s
scheduler:
  evaluate_interval_s: {evaluate_interval}s
  retention_interval_s: {retention_interval}s
database:
  url: {database}
http:
  host: 127.0.0.1
  port: {port}
alerts:
  enabled: false
models:
"""

MODEL_ENTRY = """\
  - name: {name}
    prediction: {{field: score}}
    window: {{size: 1m, allowed_lateness: {lateness}s, min_records: 20}}
    retention: {{partials: {partials}s, predictions: {partials}s}}
{extra}"""


def write_config(
    path: Path,
    spec: FleetSpec,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    database: str,
    port: int = 0,
    per_feature_metrics: bool = True,
    partials_retention_s: float = 7 * 86400.0,
    **options: Any,
) -> Path:
    """Write the fleet's service config (every model) to ``path``; return ``path``.

    ``per_feature_metrics`` False opts every model out of the per-feature series.
    ``options`` override ``max_poll_records``, ``checkpoint_interval``,
    ``checkpoint_records``, ``idle_timeout``, ``evaluate_interval``, ``retention_interval``.
    """
    values = {
        "max_poll_records": 2000,
        "checkpoint_interval": 5,
        "checkpoint_records": 50_000,
        "idle_timeout": 10,
        "evaluate_interval": 1,
        "retention_interval": 3600,
        **options,
    }
    extra = "" if per_feature_metrics else "    metrics: {per_feature: false}\n"
    text = CONFIG_HEAD.format(
        bootstrap=bootstrap, topic=topic, group=group, database=database, port=port, **values
    )
    text += "".join(
        MODEL_ENTRY.format(
            name=model_name(k),
            lateness=ALLOWED_LATENESS_S,
            partials=partials_retention_s,
            extra=extra,
        )
        for k in range(spec.models)
    )
    path.write_text(text)
    return path


def build_profiles(config_path: Path, spec: FleetSpec) -> dict[str, bytes]:
    """Return every model's reference profile, built from :func:`reference_frame`, as bytes."""
    from monitor.analyses.reference import build_profile
    from monitor.config.service import ServiceConfig

    config = ServiceConfig.load(config_path)
    return {
        model_name(k): build_profile(
            config.model(model_name(k)), reference_frame(spec, k)
        ).to_bytes()
        for k in range(spec.models)
    }


def store_profiles(database_url: str, profiles: dict[str, bytes]) -> None:
    """Store ``profiles`` (model name to profile bytes) through the Store API."""
    from monitor.store import Store

    store = Store.connect(database_url)
    try:
        for name, profile in profiles.items():
            store.save_profile(name, profile)
    finally:
        store.close()
