"""Validates a request body against the OpenAPI description the airflow package ships.

Run with the Airflow virtualenv's python (its ``jsonschema`` and ``yaml`` are Airflow's own
dependencies, so ours needs no new one)::

    python openapi_check.py METHOD PATH < body.json

``PATH`` is the templated path of the description (``/api/v2/dags/{dag_id}/dagRuns``).
Prints a JSON list of the validation errors (empty when the body is valid) and exits 0;
exits 2 when the operation or its JSON body schema is not in the description. OpenAPI 3.1
schemas are JSON Schema 2020-12, so ``$ref``s resolve against the whole document.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def _airflow_dir() -> Path:
    # find_spec locates the package without importing it (importing airflow takes seconds).
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the airflow package is not installed in this python")
    return Path(next(iter(spec.submodule_search_locations)))


SPEC = _airflow_dir() / "api_fastapi/core_api/openapi/v2-rest-api-generated.yaml"
DOCUMENT_URI = "urn:airflow:v2-rest-api"


def main(method: str, path: str) -> int:
    # libyaml's loader: the description is 16,000 lines (2.5 s with the pure-Python one).
    document = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        operation = document["paths"][path][method.lower()]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
    except KeyError as error:
        print(f"{method} {path}: no JSON request body in {SPEC.name} ({error})", file=sys.stderr)
        return 2
    registry = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    # Resolve the operation's $ref (#/components/...) against the whole document.
    wrapper = {"$ref": DOCUMENT_URI + schema["$ref"]} if "$ref" in schema else schema
    validator = Draft202012Validator(wrapper, registry=registry, format_checker=FormatChecker())
    body = json.load(sys.stdin)
    errors = [
        {"path": list(error.absolute_path), "message": error.message}
        for error in validator.iter_errors(body)
    ]
    print(json.dumps({"schema": schema.get("$ref"), "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
