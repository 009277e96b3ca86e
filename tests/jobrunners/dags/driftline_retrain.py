"""The DAG the Airflow fixture serves: records the ``conf`` of each run it is triggered with.

Copied into the fixture's dags folder and parsed by Airflow's dag-processor (it imports
``airflow``, so pytest does not collect it: see ``collect_ignore`` in ``../conftest.py``).
The task writes ``conf`` to ``$DRIFTLINE_RETRAIN_RECORD_DIR/<run_id>.json``, so a test can
see what the task itself was given, not only what the API stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="driftline_retrain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["driftline"],
)
def driftline_retrain() -> None:
    @task
    def record_conf() -> dict[str, Any]:
        context = get_current_context()
        conf = dict(context["dag_run"].conf or {})
        path = Path(os.environ["DRIFTLINE_RETRAIN_RECORD_DIR"]) / f"{context['run_id']}.json"
        path.write_text(json.dumps(conf, sort_keys=True))
        return {"model": conf.get("model"), "features": len(conf.get("features") or [])}

    record_conf()


driftline_retrain()
