"""Integration tests of the retrain hooks against real Airflow and Prefect servers."""
