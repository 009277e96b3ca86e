"""The flows the Prefect fixture serves (run with the Prefect virtualenv's python).

``python prefect_flow.py`` serves two deployments with one runner (``prefect.serve``,
``flow.serve`` for several flows): ``driftline-retrain/keys`` takes the retrain payload's
keys as parameters (the default of a ``prefect`` retrain target), and
``driftline-retrain-wrapped/wrapped`` takes it as one parameter named ``request``
(``prefect_parameter: request``). Each run writes its parameters to
``$DRIFTLINE_RETRAIN_RECORD_DIR/<flow run id>.json``. Not collected by pytest (it imports
``prefect``): see ``collect_ignore`` in ``conftest.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, serve
from prefect.runtime import flow_run


def _record(parameters: dict[str, Any]) -> None:
    path = Path(os.environ["DRIFTLINE_RETRAIN_RECORD_DIR"]) / f"{flow_run.id}.json"
    path.write_text(json.dumps(parameters, sort_keys=True))


@flow(name="driftline-retrain")
def retrain(
    event_id: str,
    model: str,
    window: dict[str, str],
    reason: str,
    features: list[dict[str, Any]],
    model_version: str | None = None,
    measured_quality: dict[str, float | None] | None = None,
    estimated_quality: dict[str, float | None] | None = None,
    reference_version: str | None = None,
    features_omitted: int | None = None,
) -> str:
    _record(
        {
            "event_id": event_id,
            "model": model,
            "model_version": model_version,
            "window": window,
            "reason": reason,
            "features": features,
            "measured_quality": measured_quality,
            "estimated_quality": estimated_quality,
            "reference_version": reference_version,
            "features_omitted": features_omitted,
        }
    )
    return model


@flow(name="driftline-retrain-wrapped")
def retrain_wrapped(request: dict[str, Any]) -> str:
    _record({"request": request})
    return str(request["model"])


if __name__ == "__main__":
    serve(
        retrain.to_deployment(name="keys"),
        retrain_wrapped.to_deployment(name="wrapped"),
    )
