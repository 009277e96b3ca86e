"""The per-model ``metrics`` section of the service config (docs/metrics-cardinality.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config.drift import ConfigError
from monitor.config.service import ServiceConfig


def load(tmp_path: Path, text: str) -> ServiceConfig:
    path = tmp_path / "service.yaml"
    path.write_text(textwrap.dedent(text))
    return ServiceConfig.load(path)


def test_per_feature_series_are_on_unless_a_model_opts_out(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        models:
          - name: small
          - name: big
            metrics: {per_feature: false}
        """,
    )
    assert config.model("small").metrics.per_feature is True
    assert config.model("big").metrics.per_feature is False


def test_an_unknown_metrics_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="per_featur"):
        load(tmp_path, "models:\n  - name: m\n    metrics: {per_featur: false}\n")
