"""The running service and the replay: store, runtimes, ingest, scheduler and HTTP API together."""
