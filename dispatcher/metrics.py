"""Prometheus metrics of one dispatcher, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    """Counters and gauges that the daemon updates and `/metrics` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter(
            "dispatcher_events_in", "Inbound MQTT messages by result",
            ["result"], registry=self.registry)
        self.dead_letters = Counter(
            "dispatcher_dead_letters", "Inbound messages rejected as dead letters, by reason",
            ["reason"], registry=self.registry)
        self.batches = Counter(
            "dispatcher_ingest_batches", "Committed ingest batches", registry=self.registry)
        self.published = Counter(
            "dispatcher_audit_published", "Audit records published to MQTT",
            registry=self.registry)
        self.mqtt_connected = Gauge(
            "dispatcher_mqtt_connected", "1 while connected to the broker",
            registry=self.registry)
        self.last_commit = Gauge(
            "dispatcher_ingest_last_commit_timestamp_seconds",
            "Unix time of the last committed ingest batch", registry=self.registry)

        self.attempts = Counter(
            "dispatcher_attempts", "Contact attempts sent, by channel", ["channel"],
            registry=self.registry)
        self.suppressed = Counter(
            "dispatcher_suppressed", "Planned or possible attempts refused by the compliance gate",
            registry=self.registry)
        self.sweeps = Counter(
            "dispatcher_sweeps", "Due sweeps of the contact engine", registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
