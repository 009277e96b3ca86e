"""Tests of the Grafana dashboards and provisioning files in ``grafana/``."""
