"""The HTTP API (FastAPI): health, results, record ingest and reference upload."""
