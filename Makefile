# driftline: every target bootstraps .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest workers: both cores by default (override: make test WORKERS=1)
WORKERS ?= 2

.PHONY: demo test lint typecheck test-slow bench bench-peers clean servers server-packages kafka-dist \
	jobrunners

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

# Servers of the integration suite. Nothing runs when a machine or CI starts: the suite
# starts (and stops) a private PostgreSQL cluster and Apache Kafka per pytest worker, and
# Prometheus and Alertmanager where a test needs them. This target only installs them:
#  - Debian's postgresql, prometheus and prometheus-alertmanager (first time: ~35 s);
#  - Apache Kafka's jars from Maven Central into .cache/kafka (first time: ~15 s).
# Without root or apt the tests that need a missing server skip locally and fail under CI=true.
DEBIAN_SERVER_PACKAGES := postgresql prometheus prometheus-alertmanager
KAFKA_LIBS := .cache/kafka/libs
servers: server-packages kafka-dist

server-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not installed:$$missing (needs root and apt-get): their integration tests skip (and fail under CI=true)"; fi; \
	fi

kafka-dist: $(KAFKA_LIBS)/.complete

$(KAFKA_LIBS)/.complete: tests/kafka/pom.xml
	@if command -v mvn >/dev/null 2>&1; then \
	  echo "fetching Apache Kafka (tests/kafka/pom.xml) into $(KAFKA_LIBS)"; \
	  rm -rf $(KAFKA_LIBS) && mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS) && touch $@; \
	else echo "no mvn: Apache Kafka is not fetched; the Kafka integration tests skip (and fail under CI=true)"; fi

# Job runners of the retrain integration tests (tests/jobrunners, docs/job-runners.md):
# Apache Airflow and Prefect, each in a virtualenv of its own under .cache (their pins
# conflict with ours), built from the same $(PYTHON) as .venv; the stamp names the version,
# so changing it rebuilds the virtualenv. First time: about 20 s each; 550 MB together.
AIRFLOW_VERSION := 3.3.2
PREFECT_VERSION := 3.9.1
AIRFLOW_STAMP := .cache/airflow-venv/.installed-$(AIRFLOW_VERSION)
PREFECT_STAMP := .cache/prefect-venv/.installed-$(PREFECT_VERSION)
jobrunners: $(AIRFLOW_STAMP) $(PREFECT_STAMP)

$(AIRFLOW_STAMP):
	rm -rf .cache/airflow-venv && $(PYTHON) -m venv .cache/airflow-venv
	.cache/airflow-venv/bin/python -m pip install --quiet --upgrade pip
	.cache/airflow-venv/bin/python -m pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(PREFECT_STAMP):
	rm -rf .cache/prefect-venv && $(PYTHON) -m venv .cache/prefect-venv
	.cache/prefect-venv/bin/python -m pip install --quiet --upgrade pip
	.cache/prefect-venv/bin/python -m pip install --quiet "prefect==$(PREFECT_VERSION)"
	touch $@

test: lint typecheck servers jobrunners
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow" -p no:cacheprovider

# Long statistical runs (false-positive rate over thousands of pairs) and soaks.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) -m slow -p no:cacheprovider

# Side-by-side benchmark against Evidently, NannyML and Alibi Detect, plus CBPE against
# NannyML's, SHAP attribution on 10,000 rows and whole processes (`driftline check` and
# `--help` against the peers' scripts on the same parquet files), in one run (see README
# "Benchmarks"; the last part alone: .venv/bin/python -m benchmarks.startup).
bench-peers:
	bash benchmarks/setup_peers.sh

bench: $(STAMP) bench-peers
	$(BIN)/python -m benchmarks.compare --rows 100000 1000000

clean:
	rm -rf $(VENV) .venv-peers .mypy_cache .ruff_cache demo-data
