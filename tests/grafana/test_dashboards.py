"""The Grafana dashboards and provisioning files in ``grafana/``.

No Grafana server can run here (DESIGN.md, "Real servers in tests"), so the
dashboards are checked in four ways instead:

- Structure: every file parses and is formatted with 2-space indentation,
  panel ids and dashboard uids are unique, every datasource reference is the
  provisioned Prometheus datasource, every panel has a description, the
  ``model`` variable is single-select.
- Schema: a parse and re-encode round trip through ``grafana-foundation-sdk``
  (the Grafana schema as Python classes). The SDK silently drops keys it does
  not know, so a key of the file missing after the round trip is a typo or a
  field Grafana does not have; the few keys the SDK legitimately does not
  model are listed in :data:`SDK_UNMODELLED` with the reason.
- Contract: every PromQL expression references only declared ``driftline_*``
  metrics -- the DESIGN.md table (``monitor.metrics.METRICS``) and the
  extension metrics beyond it (``monitor.metrics.EXTENSION_METRICS``), both
  imported -- and only their label names, in matchers, ``by``/``without``
  clauses and legends; every selector of a metric with a ``model`` (or
  ``feature``) label filters on the dashboard variable. Every declared metric
  is shown by at least one panel.
- A real Prometheus (integration): it scrapes an exposition made by
  ``monitor.metrics`` and runs every dashboard expression; each must be valid
  PromQL and every panel query must return data.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.metrics import CONTENT_TYPE, EXTENSION_METRICS, METRICS, Metrics, render
from tests import servers
from tests.test_metrics import attribution_drift, joint_drift, window_result

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "driftline.yaml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "driftline.yaml"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

#: ``{metric name: label names}`` of the DESIGN.md contract, from the code that declares it.
CONTRACT: dict[str, frozenset[str]] = {m.name: frozenset(m.labels) for m in METRICS}

#: The same for the metrics beyond the DESIGN.md table (joint and attribution drift), which
#: exist only for models configuring those sections, also from the code that declares them.
EXTENSIONS: dict[str, frozenset[str]] = {m.name: frozenset(m.labels) for m in EXTENSION_METRICS}
DEAD_LETTER_FAILURES = "driftline_dead_letter_failures_total"

#: Every metric a dashboard may query: the contract and the extensions.
DECLARED: dict[str, frozenset[str]] = {**CONTRACT, **EXTENSIONS}

#: Grafana's built-in variables the dashboards may use, with the value the integration
#: test substitutes (a range of a few scrapes at the 1 s scrape interval it configures).
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
}

#: Keys present in the dashboards that the SDK (Grafana's 10.1 schema) does not model, so
#: that they vanish in the round trip although Grafana reads them. Paths use ``[]`` for
#: "any list element". Keep each one justified; anything else missing is an error.
SDK_UNMODELLED = {
    "templating.list[].definition": (
        "the query text Grafana's variable editor shows and writes on export; VariableModel "
        "has only `query`"
    ),
    "annotations.list[].step": (
        "Prometheus-specific annotation option (query step); AnnotationQuery models only "
        "the datasource-independent fields"
    ),
    "annotations.list[].titleFormat": (
        "Prometheus-specific annotation option (title template); not in AnnotationQuery"
    ),
    "annotations.list[].tagKeys": (
        "Prometheus-specific annotation option (labels shown as tags); not in AnnotationQuery"
    ),
}

MODEL = "credit-risk"
OTHER_MODEL = "churn"
FEATURE = "income"
DRIFT_SHARE = 1 / 3

Json = dict[str, Any]


# --- loading -------------------------------------------------------------------------------


def load(path: Path) -> Json:
    """Parse one dashboard file."""
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: Json) -> Iterator[Json]:
    """Every panel of ``dashboard``, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it is."""

    where: str
    expr: str
    legend: str = ""
    #: Names of the dashboard variables this query must filter on.
    variables: tuple[str, ...] = ()
    #: A panel target (must return data), not an annotation or variable query.
    panel: bool = False
    #: For a ``label_values(selector, label)`` variable query: the label.
    label: str | None = None


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")


def dashboard_variables(dashboard: Json) -> list[str]:
    """Names of the dashboard's template variables, in order."""
    return [variable["name"] for variable in dashboard.get("templating", {}).get("list", [])]


def iter_queries(dashboard: Json) -> Iterator[Query]:
    """Every PromQL expression in ``dashboard``: panel targets, annotations, variable queries.

    A variable's own query must filter on the variables defined before it
    (Grafana resolves them in order), the other queries on all of them.
    """
    variables = tuple(dashboard_variables(dashboard))
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield Query(
                where=f"panel {panel['id']} {panel.get('title')!r} target {target.get('refId')}",
                expr=target["expr"],
                legend=target.get("legendFormat", ""),
                variables=variables,
                panel=True,
            )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield Query(
                where=f"annotation {annotation['name']!r}",
                expr=annotation["expr"],
                legend=annotation.get("titleFormat", ""),
                variables=variables,
            )
    for index, variable in enumerate(dashboard.get("templating", {}).get("list", [])):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable['name']}: expected label_values(selector, label)"
        yield Query(
            where=f"variable {variable['name']!r}",
            expr=match["selector"],
            variables=variables[:index],
            label=match["label"],
        )


def _dashboard_params() -> list[Any]:
    return [pytest.param(path, id=path.name) for path in DASHBOARD_FILES]


# --- a small PromQL lexer: enough to find metric names and label names -------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]+\}|\$\w+)
  | (?P<number>[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z0-9]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>,(){}\[\]])
    """,
    re.VERBOSE,
)
_MATCH_OPS = {"=", "!=", "=~", "!~"}
_GROUPING = {"by", "without"}
_MATCHING = {"on", "ignoring", "group_left", "group_right"}


@dataclass(frozen=True)
class Token:
    """One lexical token of a PromQL expression (``kind`` is a group name of :data:`_TOKEN`)."""

    kind: str
    text: str


def tokenize(expr: str) -> list[Token]:
    """Split ``expr`` into tokens, without whitespace; raise ValueError on a stray character."""
    tokens = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"unexpected character {expr[position]!r} at {position} in {expr!r}")
        assert match.lastgroup is not None
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _unquote(literal: str) -> str:
    """The value of a PromQL string literal (raw for backquotes and unusual escapes)."""
    if literal.startswith('"'):
        with contextlib.suppress(ValueError):
            text: str = json.loads(literal)
            return text
    return literal[1:-1]


@dataclass
class Selector:
    """A metric selector: ``name{label op "value", ...}``."""

    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class ParsedQuery:
    """What the contract checks need from one expression."""

    selectors: list[Selector]
    #: ``(keyword, labels, metric names in the aggregated argument)`` of each clause.
    clauses: list[tuple[str, list[str], set[str]]]
    #: Grafana variables used (``$name`` / ``${name}``), without the ``$``.
    variables: set[str]
    #: Selectors like ``{__name__=...}`` that name no metric (not allowed here).
    nameless: int = 0


def _closing(tokens: list[Token], start: int) -> int:
    """Index of the bracket closing the one at ``tokens[start]``."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    opening, depth = tokens[start].text, 0
    for index in range(start, len(tokens)):
        if tokens[index].text == opening:
            depth += 1
        elif tokens[index].text == pairs[opening]:
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced {opening!r}")


def _opening(tokens: list[Token], end: int) -> int:
    """Index of the ``(`` opening the ``)`` at ``tokens[end]``."""
    depth = 0
    for index in range(end, -1, -1):
        if tokens[index].text == ")":
            depth += 1
        elif tokens[index].text == "(":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unbalanced ')'")


def _metrics_in(tokens: list[Token]) -> set[str]:
    return {t.text for t in tokens if t.kind == "ident" and t.text.startswith("driftline_")}


def parse(expr: str) -> ParsedQuery:
    """Find the selectors, grouping/matching clauses and variables of ``expr``."""
    tokens = tokenize(expr)
    parsed = ParsedQuery(selectors=[], clauses=[], variables=set())
    for token in tokens:
        if token.kind == "variable":
            parsed.variables.add(token.text.strip("${}").split(":")[0])
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.text == "{":
            # A brace that does not follow a metric name: a nameless selector.
            parsed.nameless += 1
            index = _closing(tokens, index) + 1
            continue
        if token.kind == "ident" and token.text.startswith("driftline_"):
            selector = Selector(token.text)
            parsed.selectors.append(selector)
            index += 1
            if following is not None and following.text == "{":
                end = _closing(tokens, index)
                inner = [t for t in tokens[index + 1 : end] if t.text != ","]
                for name, op, value in zip(inner[0::3], inner[1::3], inner[2::3], strict=True):
                    if name.kind != "ident" or op.text not in _MATCH_OPS or value.kind != "string":
                        raise ValueError(f"bad matcher {name.text}{op.text}{value.text}")
                    selector.matchers.append((name.text, op.text, _unquote(value.text)))
                index = end + 1
            continue
        keyword = token.text.lower() if token.kind == "ident" else ""
        if keyword in _GROUPING | _MATCHING and following is not None and following.text == "(":
            end = _closing(tokens, index + 1)
            labels = [t.text for t in tokens[index + 2 : end] if t.text != ","]
            if keyword in _GROUPING:
                if end + 1 < len(tokens) and tokens[end + 1].text == "(":
                    argument = tokens[end + 1 : _closing(tokens, end + 1) + 1]
                else:  # `sum(...) by (...)`
                    if index == 0 or tokens[index - 1].text != ")":
                        raise ValueError(f"cannot find the argument of {keyword} in {expr!r}")
                    argument = tokens[_opening(tokens, index - 1) : index]
                metrics = _metrics_in(argument)
            else:  # vector matching: the labels must exist on the operands
                metrics = _metrics_in(tokens)
            parsed.clauses.append((keyword, labels, metrics))
            index = end + 1
            continue
        index += 1
    return parsed


def legend_labels(legend: str) -> set[str]:
    """Label names used as ``{{label}}`` in a legend or title template."""
    return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend))


def contract_errors(query: Query, known_variables: set[str]) -> list[str]:
    """Everything in ``query`` that breaks the metrics contract or the dashboard conventions.

    Metrics and labels are checked against :data:`DECLARED` (contract and extensions).
    """
    errors = []
    try:
        parsed = parse(query.expr)
    except ValueError as error:
        return [f"{query.where}: cannot parse {query.expr!r}: {error}"]
    if parsed.nameless:
        errors.append(f"{query.where}: selector without a metric name in {query.expr!r}")
    if not parsed.selectors:
        errors.append(f"{query.where}: no driftline_* metric in {query.expr!r}")
    for name in sorted(parsed.variables - known_variables):
        errors.append(f"{query.where}: unknown variable ${name} in {query.expr!r}")
    used_labels: set[str] = set()
    for selector in parsed.selectors:
        labels = DECLARED.get(selector.metric)
        if labels is None:
            errors.append(f"{query.where}: {selector.metric} is not a declared metric")
            continue
        used_labels |= labels
        matched = {name: (op, value) for name, op, value in selector.matchers}
        for name in sorted(set(matched) - labels):
            errors.append(f"{query.where}: {selector.metric} has no label {name!r}")
        for variable in query.variables:
            if variable in labels and matched.get(variable) != ("=", f"${variable}"):
                wanted = f'{variable}="${variable}"'
                errors.append(f"{query.where}: {selector.metric} must be filtered with {wanted}")
    for keyword, clause_labels, metrics in parsed.clauses:
        if not metrics:
            errors.append(f"{query.where}: {keyword} (...) over no driftline_* metric")
        for metric in sorted(metrics & DECLARED.keys()):
            for label in clause_labels:
                if label not in DECLARED[metric]:
                    errors.append(
                        f"{query.where}: {keyword} ({label}) but {metric} has no label {label!r}"
                    )
    for label in sorted(legend_labels(query.legend) - used_labels):
        errors.append(f"{query.where}: legend uses {{{{{label}}}}}, a label no metric here has")
    if query.label is not None:
        for selector in parsed.selectors:
            if query.label not in DECLARED.get(selector.metric, {query.label}):
                errors.append(f"{query.where}: {selector.metric} has no label {query.label!r}")
    return errors


# --- SDK round trip ------------------------------------------------------------------------


def sdk_round_trip(dashboard: Json) -> Json:
    """Parse ``dashboard`` with grafana-foundation-sdk and encode it back to plain JSON.

    The panel and query plugins are registered first: without them the SDK
    keeps panel options, custom field config and targets as opaque dicts and
    would check nothing inside them.
    """
    try:
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.cog.plugins import register_default_plugins
        from grafana_foundation_sdk.models.dashboard import Dashboard
    except ImportError as error:
        servers.skip_or_fail(
            f"grafana-foundation-sdk is not importable ({error}): "
            "`.venv/bin/pip install grafana-foundation-sdk`"
        )
    register_default_plugins()
    encoded: Json = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    return encoded


def round_trip_losses(original: Any, encoded: Any, path: str = "") -> list[tuple[str, str]]:
    """Compare ``original`` with its round trip; return ``(path, problem)`` for each loss.

    Every key of the original must be present after the round trip with an
    equal value; keys the SDK adds (its defaults) are ignored. Paths are
    dotted, with ``[]`` for any list element (the form of :data:`SDK_UNMODELLED`)
    and the index in the problem text.
    """
    losses: list[tuple[str, str]] = []
    if isinstance(original, dict):
        if not isinstance(encoded, dict):
            return [(path, f"object became {type(encoded).__name__}")]
        for key, value in original.items():
            child = f"{path}.{key}" if path else key
            if key not in encoded:
                losses.append((child, "dropped"))
            else:
                losses += round_trip_losses(value, encoded[key], child)
    elif isinstance(original, list):
        if not isinstance(encoded, list) or len(encoded) != len(original):
            return [(path, f"list became {encoded!r}")]
        for index, (value, other) in enumerate(zip(original, encoded, strict=True)):
            losses += [
                (item_path, f"[{index}] {problem}")
                for item_path, problem in round_trip_losses(value, other, f"{path}[]")
            ]
    elif original != encoded or type(original) is not type(encoded):
        losses.append((path, f"{original!r} became {encoded!r}"))
    return losses


def unexpected_losses(dashboard: Json) -> tuple[list[str], set[str]]:
    """Round-trip losses not in :data:`SDK_UNMODELLED`, and the allowlisted paths seen."""
    losses = round_trip_losses(dashboard, sdk_round_trip(dashboard))
    allowed = {
        path for path, problem in losses if path in SDK_UNMODELLED and problem.endswith("dropped")
    }
    errors = [f"{path}: {problem}" for path, problem in losses if path not in allowed]
    return errors, allowed


# --- structure -----------------------------------------------------------------------------


def test_dashboards_exist() -> None:
    """The overview dashboard is there (and the glob is not silently empty)."""
    assert DASHBOARD_DIR / "driftline-overview.json" in DASHBOARD_FILES


@pytest.mark.parametrize("path", _dashboard_params())
def test_dashboard_parses_and_is_formatted(path: Path) -> None:
    """Each file is a JSON object written with 2-space indentation and a final newline."""
    text = path.read_text(encoding="utf-8")
    dashboard = json.loads(text)
    assert isinstance(dashboard, dict)
    assert text == json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n", (
        f"{path.name}: reformat with json.dumps(indent=2, ensure_ascii=False) plus a newline"
    )
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["title"]
    assert dashboard.get("description")
    assert "driftline" in dashboard.get("tags", [])


def test_dashboard_uids_are_unique() -> None:
    """Dashboard uids are unique, at most 40 characters (Grafana's limit) and URL-safe."""
    uids = [load(path)["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids)), uids
    for uid in uids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid), uid
    assert "driftline-overview" in uids


@pytest.mark.parametrize("path", _dashboard_params())
def test_panel_ids_are_unique(path: Path) -> None:
    """Panel ids (rows and nested panels included) are unique within a dashboard."""
    ids: list[int] = [panel["id"] for panel in iter_panels(load(path))]
    assert all(isinstance(i, int) for i in ids), ids
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"{path.name}: duplicate panel ids {duplicates}"


@pytest.mark.parametrize("path", _dashboard_params())
def test_panels_fit_the_grid_without_overlap(path: Path) -> None:
    """Every panel lies within the 24-column grid and no two panels overlap."""
    boxes = []
    for panel in iter_panels(load(path)):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["w"] > 0, panel["title"]
        assert grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']!r} is wider than the grid"
        boxes.append((panel["title"], grid))
    for index, (title, a) in enumerate(boxes):
        for other, b in boxes[index + 1 :]:
            overlap_x = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            overlap_y = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            assert not (overlap_x and overlap_y), f"{title!r} overlaps {other!r}"


@pytest.mark.parametrize("path", _dashboard_params())
def test_every_panel_has_a_description(path: Path) -> None:
    """Every visualisation says what it shows. Rows are exempt: Grafana's row has no description."""
    missing = [
        panel.get("title")
        for panel in iter_panels(load(path))
        if panel["type"] != "row" and not str(panel.get("description", "")).strip()
    ]
    assert not missing, f"{path.name}: panels without a description: {missing}"


def provisioned_datasource() -> Json:
    """The one datasource of the provisioning file."""
    config = yaml.safe_load(DATASOURCE_FILE.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (datasource,) = config["datasources"]
    assert isinstance(datasource, dict)
    return datasource


def test_datasource_provisioning() -> None:
    """One Prometheus datasource, uid ``driftline-prometheus``, URL from ``$PROMETHEUS_URL``."""
    datasource = provisioned_datasource()
    assert datasource["uid"] == "driftline-prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "${PROMETHEUS_URL}"
    text = DATASOURCE_FILE.read_text(encoding="utf-8")
    assert "http://127.0.0.1:9090" in text, "the documented default URL is missing"


def test_dashboard_provider_provisioning() -> None:
    """A file provider whose documented path is where the dashboards are to be mounted."""
    config = yaml.safe_load(PROVIDER_FILE.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    text = PROVIDER_FILE.read_text(encoding="utf-8")
    for dashboard in DASHBOARD_FILES:
        assert f"{path}/{dashboard.name}" in text, f"mount path of {dashboard.name} undocumented"


def _datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else key
            if key == "datasource":
                yield child, value
            else:
                yield from _datasource_refs(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _datasource_refs(value, f"{path}[{index}]")


@pytest.mark.parametrize("path", _dashboard_params())
def test_datasource_references_use_the_provisioned_uid(path: Path) -> None:
    """Every ``datasource`` (panels, targets, variables, annotations) is the provisioned one."""
    datasource = provisioned_datasource()
    expected = {"type": datasource["type"], "uid": datasource["uid"]}
    dashboard = load(path)
    refs = list(_datasource_refs(dashboard))
    assert refs
    wrong = [(where, ref) for where, ref in refs if ref != expected]
    assert not wrong, f"{path.name}: datasource references other than {expected}: {wrong}"
    for panel in iter_panels(dashboard):
        if panel["type"] != "row":
            assert panel.get("datasource") == expected, f"{panel['title']!r} has no datasource"


@pytest.mark.parametrize("path", _dashboard_params())
def test_model_variable(path: Path) -> None:
    """``model`` is a single-select query variable over the models that sent records."""
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    model = variables["model"]
    assert model["type"] == "query"
    assert model["query"] == "label_values(driftline_records_total, model)"
    assert model["multi"] is False
    assert model["includeAll"] is False


# --- schema round trip ---------------------------------------------------------------------


@pytest.mark.parametrize("path", _dashboard_params())
def test_sdk_round_trip_keeps_every_key(path: Path) -> None:
    """Parsing with grafana-foundation-sdk and re-encoding loses no key and changes no value.

    A key the SDK drops is a typo or a field Grafana does not have, unless it
    is allowlisted in :data:`SDK_UNMODELLED` with its reason.
    """
    errors, _ = unexpected_losses(load(path))
    assert not errors, f"{path.name}: lost in the SDK round trip:\n" + "\n".join(errors)


def test_sdk_allowlist_is_used() -> None:
    """Every allowlisted path occurs in some dashboard: a stale entry would hide future typos."""
    seen: set[str] = set()
    for path in DASHBOARD_FILES:
        seen |= unexpected_losses(load(path))[1]
    assert set(SDK_UNMODELLED) <= seen, f"unused allowlist entries: {set(SDK_UNMODELLED) - seen}"


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        ("panel", "descripton"),
        ("target", "legendFromat"),
        ("options", "reduceOption"),
        ("custom", "fillOpacty"),
        ("variable", "mutli"),
    ],
)
def test_sdk_round_trip_catches_a_misspelled_key(where: str, typo: str) -> None:
    """The round-trip check is not vacuous: a misspelled key at each level is reported."""
    dashboard = load(DASHBOARD_DIR / "driftline-overview.json")
    panel = next(p for p in dashboard["panels"] if p["type"] == "timeseries")
    node = {
        "panel": panel,
        "target": panel["targets"][0],
        "options": panel["options"],
        "custom": panel["fieldConfig"]["defaults"]["custom"],
        "variable": dashboard["templating"]["list"][0],
    }[where]
    node[typo] = True
    errors, _ = unexpected_losses(dashboard)
    assert len(errors) == 1, errors
    assert errors[0].split(":")[0].endswith(f".{typo}")


# --- metrics contract ----------------------------------------------------------------------


def test_contract_is_imported() -> None:
    """The contract comes from monitor.metrics and covers the DESIGN.md table."""
    assert len(CONTRACT) == 19
    assert CONTRACT["driftline_feature_drift_score"] == {"model", "feature", "method"}


def test_extensions_are_imported() -> None:
    """The extension metrics come from monitor.metrics, apart from the contract's names."""
    assert len(EXTENSIONS) == 5
    assert not EXTENSIONS.keys() & CONTRACT.keys()
    assert EXTENSIONS["driftline_multivariate_drift_score"] == {"model", "method"}
    assert EXTENSIONS["driftline_attribution_drift_detected"] == {"model", "feature"}
    assert EXTENSIONS[DEAD_LETTER_FAILURES] == {"reason"}


def panel_metrics() -> dict[str, set[str]]:
    """``{metric name: titles of the panels querying it}`` over every dashboard."""
    shown: dict[str, set[str]] = {}
    for path in DASHBOARD_FILES:
        for panel in iter_panels(load(path)):
            for target in panel.get("targets", []):
                for selector in parse(target["expr"]).selectors:
                    shown.setdefault(selector.metric, set()).add(f"{path.name}: {panel['title']}")
    return shown


@pytest.mark.parametrize(
    "metric", [pytest.param(m.name, id=m.name) for m in (*METRICS, *EXTENSION_METRICS)]
)
def test_every_declared_metric_has_a_panel(metric: str) -> None:
    """Each contract and extension metric is queried by at least one panel (not only by an
    annotation or variable), so a newly declared metric cannot go unshown."""
    assert panel_metrics().get(metric), f"no dashboard panel queries {metric}"


def test_extension_metrics_are_in_their_row() -> None:
    """The four joint and attribution metrics are shown in the overview's row of that name
    (the dead-letter failures, a fifth extension, belong to the ingest row)."""
    dashboard = load(DASHBOARD_DIR / "driftline-overview.json")
    panels = dashboard["panels"]
    (row_index,) = [
        i for i, p in enumerate(panels) if p["type"] == "row" and "attribution" in p["title"]
    ]
    row: list[Json] = []  # the panels up to the next row, or nested in it if collapsed
    for panel in panels[row_index + 1 :]:
        if panel["type"] == "row":
            break
        row.append(panel)
    row += panels[row_index].get("panels", [])
    assert row, "the joint and attribution row has no panels"
    metrics = {
        selector.metric
        for panel in row
        for target in panel["targets"]
        for selector in parse(target["expr"]).selectors
    }
    assert metrics == EXTENSIONS.keys() - {DEAD_LETTER_FAILURES}, metrics
    for panel in row:
        assert "Empty unless the model configures" in panel["description"], panel["title"]


@pytest.mark.parametrize("path", _dashboard_params())
def test_queries_use_only_contract_metrics_and_labels(path: Path) -> None:
    """Every expression names declared metrics and labels, and filters on the variables."""
    dashboard = load(path)
    known = set(dashboard_variables(dashboard)) | set(GRAFANA_BUILTINS)
    queries = list(iter_queries(dashboard))
    assert any(q.panel for q in queries)
    errors = [error for query in queries for error in contract_errors(query, known)]
    assert not errors, f"{path.name}:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("expr", "legend", "problem"),
    [
        ('driftline_records{model="$model"}', "", "is not a declared metric"),
        ('driftline_records_total_created{model="$model"}', "", "is not a declared metric"),
        ('driftline_multivariate_drift{model="$model"}', "", "is not a declared metric"),
        ('driftline_multivariate_drift_score{model="$model", feature="x"}', "", "has no label"),
        ("driftline_attribution_drift_detected", "", 'must be filtered with model="$model"'),
        ('max by (method) (driftline_attribution_mean_abs_shap{model="$model"})', "", "has no"),
        ('driftline_multivariate_drift_detected{model="$model"}', "{{feature}}", "legend uses"),
        ('driftline_records_total{model="$model", reason="x"}', "", "has no label 'reason'"),
        ("driftline_records_total", "", 'must be filtered with model="$model"'),
        ('driftline_records_total{model="credit-risk"}', "", "must be filtered"),
        ('sum by (feature) (driftline_records_total{model="$model"})', "", "has no label"),
        ('sum(driftline_records_total{model="$model"}) by (reason)', "", "has no label"),
        ('driftline_records_total{model="$model"}', "{{feature}}", "legend uses"),
        ('rate(driftline_records_total{model="$model"}[$__bogus])', "", "unknown variable"),
        ('{__name__="driftline_records_total"}', "", "without a metric name"),
    ],
)
def test_contract_check_catches(expr: str, legend: str, problem: str) -> None:
    """The contract check is not vacuous: each kind of mistake is reported."""
    query = Query("test", expr, legend, variables=("model",), panel=True)
    errors = contract_errors(query, {"model", *GRAFANA_BUILTINS})
    assert any(problem in error for error in errors), errors


def test_contract_check_accepts_valid_queries() -> None:
    """Correct queries, including ``sum(...) by (...)`` and string-escaped matchers, pass."""
    for expr, legend in [
        ('sum(rate(driftline_records_total{model="$model"}[$__rate_interval])) by (model)', ""),
        ('max by (feature, method) (driftline_feature_drift_score{model="$model"})', "{{method}}"),
        ('time() - max(driftline_window_end_timestamp_seconds{model="$model"})', ""),
        ("sum by (topic, partition) (driftline_consumer_lag_records)", "{{partition}}"),
        ('driftline_alerts_total{model="$model", rule=~"a\\"b|c"}', "{{rule}}"),
        ('max by (method) (driftline_multivariate_drift_score{model="$model"})', "{{method}}"),
        (
            "sort_desc(topk(5, max by (feature) "
            '(driftline_attribution_mean_abs_shap{model="$model"})))',
            "{{feature}}",
        ),
    ]:
        query = Query("test", expr, legend, variables=("model",), panel=True)
        assert contract_errors(query, {"model", *GRAFANA_BUILTINS}) == []


# --- a real Prometheus ---------------------------------------------------------------------

#: How long to wait for Prometheus to have two scrapes of every series queryable. The first
#: sample is queryable 5-6 s after start (DESIGN.md); the margin is for a loaded CI machine.
SAMPLE_TIMEOUT = 30.0


def populate(metrics: Metrics) -> None:
    """Give every declared metric series for :data:`MODEL` (and some for :data:`OTHER_MODEL`).

    The per-window gauges come from real window results, as the evaluator publishes them.
    """
    metrics.records_total.labels(model=MODEL).inc(100)
    metrics.records_invalid_total.labels(model=MODEL, reason="malformed_json").inc(3)
    metrics.dead_letter_failures_total.labels(reason="too_large").inc()
    metrics.records_late_total.labels(model=MODEL).inc(2)
    metrics.observe_result(
        window_result(
            MODEL,
            features=[
                (FEATURE, "ks", 0.31, 1e-9, True, 0.0),
                ("age", "ks", 0.05, 0.4, False, 0.01),
                ("region", "psi", 0.02, None, False, 0.1),
            ],
            prediction=("ks", 0.12),
            drift_share=DRIFT_SHARE,
            records=1200,
            window_end=time.time() - 60,
            quality={"accuracy": 0.91},
            labelled=60,
            predictions_stored=100,
            joint_drift=joint_drift(("domain_classifier", 0.74, True), ("mmd", 0.002, False)),
            attribution=attribution_drift(
                ("age", 0.08, False), (FEATURE, 0.42, True), ("region", 0.01, False)
            ),
        ),
        estimated_quality={"accuracy": 0.88},
    )
    metrics.consumer_lag_records.labels(topic="predictions", partition="0").set(42)
    # Alerting: feature-drift has an open incident; prediction-drift fired, and resolved.
    metrics.alerts_total.labels(model=MODEL, rule="feature-drift", severity="critical").inc()
    metrics.alerts_total.labels(model=MODEL, rule="prediction-drift", severity="warning").inc(2)
    metrics.webhook_deliveries_total.labels(target="retrain", outcome="delivered").inc()
    metrics.webhook_deliveries_total.labels(target="retrain", outcome="http_error").inc()
    metrics.webhook_deliveries_total.labels(target="slack", outcome="dead").inc()
    metrics.watch_alerts(
        lambda: {
            (MODEL, "feature-drift", "critical"): 1,
            (OTHER_MODEL, "quality-drop", "warning"): 3,
        },
        lambda: {"pending": 2, "dead": 1},
    )
    # Another model, whose series the $model filter must keep out.
    metrics.records_total.labels(model=OTHER_MODEL).inc(5)
    metrics.alerts_total.labels(model=OTHER_MODEL, rule="quality-drop", severity="warning").inc(3)
    metrics.observe_result(
        window_result(
            OTHER_MODEL,
            features=[(FEATURE, "ks", 0.9, 1e-12, True, 0.5)],
            prediction=None,
            drift_share=0.9,
            records=10,
            window_end=time.time(),
            joint_drift=joint_drift(("pca_reconstruction", 9.0, True)),
            attribution=attribution_drift(("zip", 5.0, True)),
        )
    )


@contextlib.contextmanager
def metrics_endpoint(metrics: Metrics) -> Iterator[int]:
    """Serve ``/metrics`` of ``metrics`` on 127.0.0.1; yield the port.

    Each scrape first counts 5 more records of :data:`MODEL`, one more of its
    feature-drift alerts and one more failed (``http_error``) delivery to the
    ``retrain`` target, so that their rates are positive while the other
    counters' are zero.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            metrics.records_total.labels(model=MODEL).inc(5)
            metrics.alerts_total.labels(
                model=MODEL, rule="feature-drift", severity="critical"
            ).inc()
            metrics.webhook_deliveries_total.labels(target="retrain", outcome="http_error").inc()
            body = render(metrics.registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((servers.LOCALHOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def prometheus_server(binary: str, directory: Path, target_port: int) -> Iterator[str]:
    """Run Prometheus scraping ``127.0.0.1:target_port`` every second; yield its base URL.

    It is terminated (killed after 10 s) on exit, whatever happens.
    """
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "driftline",
                        "static_configs": [{"targets": [f"{servers.LOCALHOST}:{target_port}"]}],
                    }
                ],
            }
        )
    )
    port = servers.free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={servers.LOCALHOST}:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        try:
            servers.wait_for_port(servers.LOCALHOST, port, timeout=15, process=process)
        except (servers.ServerStartError, TimeoutError) as error:
            pytest.fail(f"prometheus did not start: {error}\n{log_path.read_text()}")
        yield f"http://{servers.LOCALHOST}:{port}"
        assert process.poll() is None, f"prometheus exited:\n{log_path.read_text()}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def instant_query(base_url: str, expr: str) -> Json:
    """Run ``expr`` through ``/api/v1/query``; return the decoded response, errors included."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: Json = json.load(response)
    except urllib.error.HTTPError as error:  # 400/422 carry the PromQL error as JSON
        text = error.read().decode(errors="replace")
        try:
            body = json.loads(text)
        except ValueError:  # e.g. 503 "Service Unavailable" while Prometheus starts
            body = {"status": "error", "error": f"HTTP {error.code}: {text.strip()}"}
    return body


def wait_for_two_scrapes(base_url: str) -> None:
    """Return once Prometheus holds two samples of :data:`MODEL`'s records counter."""
    probe = f'count_over_time(driftline_records_total{{model="{MODEL}"}}[1m]) >= 2'
    deadline = time.monotonic() + SAMPLE_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if instant_query(base_url, probe).get("data", {}).get("result"):
                return
        time.sleep(0.5)
    pytest.fail(f"no two scrapes of driftline_records_total within {SAMPLE_TIMEOUT} s")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` Grafana variables by ``values``."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


@pytest.mark.integration
def test_dashboard_queries_run_on_real_prometheus(tmp_path: Path) -> None:
    """Every dashboard expression is valid PromQL for a real Prometheus; panels get data.

    Prometheus scrapes an exposition made by ``monitor.metrics``. Each panel
    query must return at least one series, carrying every label its legend
    uses; the key panels are checked for their values, so that a wrong
    ``$model`` filter or aggregation shows.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        servers.skip_or_fail(
            "prometheus is not installed: `apt-get install -y prometheus` (Debian) provides "
            "/usr/bin/prometheus"
        )
    metrics = Metrics(CollectorRegistry())
    populate(metrics)
    values = {"model": MODEL, "feature": FEATURE, **GRAFANA_BUILTINS}
    with metrics_endpoint(metrics) as port, prometheus_server(binary, tmp_path, port) as api:
        wait_for_two_scrapes(api)
        errors = []
        results: dict[str, list[Json]] = {}
        for path in DASHBOARD_FILES:
            for query in iter_queries(load(path)):
                expr = substitute(query.expr, values)
                where = f"{path.name} {query.where}: {expr}"
                response = instant_query(api, expr)
                if response.get("status") != "success":
                    errors.append(f"{where}: {response.get('error', response)}")
                    continue
                result = response["data"]["result"]
                results[expr] = result
                if (query.panel or query.label) and not result:
                    errors.append(f"{where}: no data")
                for series in result:
                    labels = series["metric"]
                    for label in legend_labels(query.legend) - labels.keys():
                        errors.append(f"{where}: legend label {label!r} not in {labels}")
                    if query.label and query.label not in labels:
                        errors.append(f"{where}: variable label {query.label!r} not in {labels}")
        assert not errors, "\n".join(errors)

    def value_of(expr: str) -> list[tuple[dict[str, str], float]]:
        return [(s["metric"], float(s["value"][1])) for s in results[expr]]

    share = value_of(f'max(driftline_dataset_drift_share{{model="{MODEL}"}})')
    assert len(share) == 1, share
    assert math.isclose(share[0][1], DRIFT_SHARE), share
    scores = value_of(
        f'sort_desc(max by (feature, method) (driftline_feature_drift_score{{model="{MODEL}"}}))'
    )
    assert [(s["feature"], s["method"]) for s, _ in scores] == [
        (FEATURE, "ks"),
        ("age", "ks"),
        ("region", "psi"),
    ]
    rate = value_of(f'sum by (model) (rate(driftline_records_total{{model="{MODEL}"}}[1m]))')
    assert [labels for labels, _ in rate] == [{"model": MODEL}], rate
    assert rate[0][1] > 0, rate
    drifted = value_of(f'sum(driftline_feature_drift_detected{{model="{MODEL}"}})')
    assert drifted[0][1] == 1.0, drifted
    joint = value_of(f'max by (method) (driftline_multivariate_drift_detected{{model="{MODEL}"}})')
    assert sorted((s["method"], v) for s, v in joint) == [
        ("domain_classifier", 1.0),
        ("mmd", 0.0),
    ], joint
    shap = value_of(
        "sort_desc(topk(15, max by (feature) "
        f'(driftline_attribution_mean_abs_shap{{model="{MODEL}"}})))'
    )
    assert [(s["feature"], v) for s, v in shap] == [
        (FEATURE, 0.42),
        ("age", 0.08),
        ("region", 0.01),
    ]
    attribution = value_of(
        f'max by (feature) (driftline_attribution_drift_detected{{model="{MODEL}"}})'
    )
    assert {s["feature"]: v for s, v in attribution} == {FEATURE: 1.0, "age": 0.0, "region": 0.0}

    # Alerts and webhooks: the other model's rule (quality-drop) is filtered out.
    fired = value_of(
        "sort_desc(sum by (rule, severity) "
        f'(increase(driftline_alerts_total{{model="{MODEL}"}}[5m])))'
    )
    assert [(s["rule"], s["severity"]) for s, _ in fired] == [
        ("feature-drift", "critical"),
        ("prediction-drift", "warning"),
    ], fired
    assert fired[0][1] > 0, fired
    assert fired[1][1] == 0.0, fired
    fired_per_interval = value_of(
        f'sum by (rule, severity) (increase(driftline_alerts_total{{model="{MODEL}"}}[1m]))'
    )
    assert {(s["rule"], s["severity"]) for s, _ in fired_per_interval} == {
        ("feature-drift", "critical"),
        ("prediction-drift", "warning"),
    }, fired_per_interval
    # Open incidents: 1 = firing; a rule that fired but has no open incident shows 0 = ok.
    incidents = value_of(
        f'max by (rule, severity) (driftline_alerts_active{{model="{MODEL}"}}) '
        f'or (0 * max by (rule, severity) (driftline_alerts_total{{model="{MODEL}"}}))'
    )
    assert {(s["rule"], s["severity"]): v for s, v in incidents} == {
        ("feature-drift", "critical"): 1.0,
        ("prediction-drift", "warning"): 0.0,
    }, incidents
    deliveries = value_of("sum by (target, outcome) (rate(driftline_webhook_deliveries_total[1m]))")
    delivery_rates = {(s["target"], s["outcome"]): v for s, v in deliveries}
    assert delivery_rates.keys() == {
        ("retrain", "delivered"),
        ("retrain", "http_error"),
        ("slack", "dead"),
    }, deliveries
    assert delivery_rates[("retrain", "http_error")] > 0, deliveries
    assert delivery_rates[("retrain", "delivered")] == 0.0, deliveries
    assert delivery_rates[("slack", "dead")] == 0.0, deliveries
    outbox = value_of("max by (state) (driftline_outbox_events)")
    assert {s["state"]: v for s, v in outbox} == {"pending": 2.0, "dead": 1.0}, outbox
