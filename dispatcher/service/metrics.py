"""Prometheus metrics of one dispatcher, on a registry of its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        self.unpublishable = Counter(
            "dispatcher_audit_unpublishable",
            "Audit records that can never be published to MQTT (logged, marked, skipped)",
            registry=self.registry)
        self.mqtt_connected = Gauge(
            "dispatcher_mqtt_connected", "1 while connected to the broker",
            registry=self.registry)
        self.last_commit = Gauge(
            "dispatcher_ingest_last_commit_timestamp_seconds",
            "Unix time of the last committed ingest batch", registry=self.registry)

        self.attempts = Counter(
            "dispatcher_attempts", "Contact attempts recorded, by channel", ["channel"],
            registry=self.registry)
        self.outcomes = Counter(
            "dispatcher_outcomes", "Final outcomes of attempts, by channel and outcome",
            ["channel", "outcome"], registry=self.registry)
        self.suppressed = Counter(
            "dispatcher_suppressed", "Attempts refused by the compliance gate, by reason",
            ["reason"], registry=self.registry)
        self.webhooks_rejected = Counter(
            "dispatcher_webhooks_rejected", "Provider callbacks refused, by route and reason "
            "(missing_signature, bad_signature, malformed_body, unsupported_content_type, "
            "too_large)", ["route", "reason"], registry=self.registry)
        self.sweeps = Counter(
            "dispatcher_sweeps", "Due sweeps of the contact engine", registry=self.registry)
        self.claims_lost = Counter(
            "dispatcher_claims_lost", "Claimed accounts whose decisions were not committed: "
            "the claim lease ran out and another daemon claimed them", registry=self.registry)
        self.due_lag = Gauge(
            "dispatcher_due_lag_seconds", "How late the oldest due account is (0: none waiting)",
            registry=self.registry)
        self.provider_latency = Histogram(
            "dispatcher_provider_latency_seconds", "Time for the provider to take a delivery",
            ["channel"], registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.job_runs = Counter(
            "dispatcher_job_runs", "Runs of the periodic jobs, by job and result "
            "(ok, failed, missed, overlapping; elsewhere: another daemon sharing the store "
            "ran it)", ["job", "result"], registry=self.registry)
        self.retention_pruned = Counter(
            "dispatcher_retention_pruned", "Audit records removed by retention",
            registry=self.registry)
        self.retention_due = Gauge(
            "dispatcher_retention_due", "Audit records past retention and not yet removed",
            registry=self.registry)

    def observe_audit(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Count the engine's committed audit records: attempts, outcomes, suppressions."""
        for record in records:
            kind = record.get("kind")
            if kind == "attempt":
                self.attempts.labels(record["channel"]).inc()
            elif kind == "outcome":
                self.outcomes.labels(record["channel"], record["status"]).inc()
            elif kind == "suppressed":
                self.suppressed.labels(record["reason"]).inc()

    def observe_lost_claims(self, accounts: Sequence[str]) -> None:
        """Count the accounts whose decisions a commit left out (another daemon held them)."""
        self.claims_lost.inc(len(accounts))

    def count_webhook_refusal(self, route: str, reason: str) -> None:
        """Count one refused provider callback (audited only in aggregate)."""
        self.webhooks_rejected.labels(route, reason).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
