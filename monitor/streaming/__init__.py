"""The streaming path: Kafka ingestion, partial sketches, checkpoints, window evaluation."""
