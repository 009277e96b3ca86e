# driftline: every target bootstraps .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest workers: both cores by default (override: make test WORKERS=1)
WORKERS ?= 2

.PHONY: demo test lint typecheck test-slow bench bench-peers clean prometheus-bin

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy detectors alerts
	$(BIN)/mypy monitor

# Real Prometheus for the integration tests (Debian package, ~35 s once; starts no service).
# Without root or apt the tests that need it skip locally and fail under CI=true.
prometheus-bin:
	@command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "prometheus not found: its integration tests skip (and fail under CI=true)"; fi; }

test: lint typecheck prometheus-bin
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow" -p no:cacheprovider

# Long statistical runs (false-positive rate over thousands of pairs) and soaks.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) -m slow -p no:cacheprovider

# Side-by-side benchmark against Evidently, NannyML and Alibi Detect, plus CBPE against
# NannyML's and SHAP attribution on 10,000 rows, in one run (see README "Benchmarks").
bench-peers:
	bash benchmarks/setup_peers.sh

bench: $(STAMP) bench-peers
	$(BIN)/python -m benchmarks.compare --rows 100000 1000000

clean:
	rm -rf $(VENV) .venv-peers .mypy_cache .ruff_cache demo-data
