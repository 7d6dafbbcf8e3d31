"""MQTT ingest: receive, validate, commit in batches, and only then acknowledge."""
