"""``driftline check --multivariate``: joint drift that the univariate tests miss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.multivariate import MULTIVARIATE_METHODS
from detectors.profile import ReferenceProfile
from detectors.sample import RowSample
from monitor.cli import EXIT_DRIFT, EXIT_OK, EXIT_USAGE, main


def correlated(n: int, rho: float, seed: int) -> pd.DataFrame:
    """Standard normal a, b with correlation rho (marginals never move), noise c, category d."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    return pd.DataFrame(
        {"a": z[:, 0], "b": z[:, 1], "c": rng.normal(size=n), "d": rng.choice(list("xyz"), n)}
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("multivariate")
    paths = {}
    for name, rho, seed in (("ref", 0.0, 1), ("same", 0.0, 2), ("corr", 0.8, 3)):
        paths[name] = folder / f"{name}.parquet"
        correlated(5_000, rho, seed).to_parquet(paths[name])
    return paths


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["check", "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_a_correlation_change_is_found_only_jointly(files, capsys):
    args = ["--reference", str(files["ref"]), "--current", str(files["corr"])]
    code, out = run_json(capsys, *args, "--multivariate", "--fail-on-drift")
    assert not any(f["drift"] for f in out["features"])  # every marginal is unchanged
    found = {r["method"]: r for r in out["multivariate"]}
    assert set(found) == {"pca_reconstruction", "domain_classifier", "mmd"}
    assert found["mmd"]["drift"]
    assert found["domain_classifier"]["drift"]
    assert code == EXIT_DRIFT  # --fail-on-drift counts joint drift
    # Without the flag nothing is computed, and the contract's keys are unchanged.
    code, out = run_json(capsys, *args, "--fail-on-drift")
    assert code == EXIT_OK
    assert out["multivariate"] is None


def test_no_joint_drift_between_samples_of_one_distribution(files, capsys):
    code, out = run_json(
        capsys,
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["same"]),
        "--multivariate",
        "--fail-on-drift",
    )
    assert code == EXIT_OK
    assert not any(r["drift"] for r in out["multivariate"])


def test_results_equal_the_library_on_the_same_samples(files, capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("multivariate:\n  methods: [mmd]\n  seed: 7\n  current_rows: 500\n")
    code, out = run_json(
        capsys,
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["corr"]),
        "--config",
        str(config),  # a multivariate section asks for it without the flag
    )
    assert code == EXIT_OK
    reference, current = pd.read_parquet(files["ref"]), pd.read_parquet(files["corr"])
    profile = ReferenceProfile.from_frame(reference)
    specs = dict(profile.specs)
    expected = MULTIVARIATE_METHODS.create("mmd", seed=7).compare(
        RowSample.from_frame(reference, specs, size=2000),
        RowSample.from_frame(current, specs, size=500),
    )
    (reported,) = out["multivariate"]
    assert reported == expected.to_dict()


def test_an_unknown_method_is_a_config_error(files, capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("multivariate:\n  methods: [energy]\n")
    ref = str(files["ref"])
    assert main(["check", "--reference", ref, "--current", ref, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "multivariate.methods" in err
    assert "energy" in err
    assert EXIT_USAGE == 2
