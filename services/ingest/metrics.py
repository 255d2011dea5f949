"""Prometheus metrics for ingest (served at /metrics by shared.http)."""

from prometheus_client import Counter, Histogram

__all__ = ["ACCEPTED", "BATCH_SECONDS", "DEAD_LETTERED", "DUPLICATE", "PRODUCED", "RECEIVED", "REJECTED"]

RECEIVED = Counter("ingest_signals_received_total", "Signals received", ["source"])
ACCEPTED = Counter("ingest_signals_accepted_total", "Signals accepted (new)", ["source"])
DUPLICATE = Counter("ingest_signals_duplicate_total", "Signals already accepted before", ["source"])
REJECTED = Counter("ingest_signals_rejected_total", "Signals rejected", ["source", "reason"])
DEAD_LETTERED = Counter("ingest_dead_lettered_total", "Kafka input sent to dead letters", ["reason"])
PRODUCED = Counter("ingest_signals_produced_total", "Anonymised signals produced (acked)", ["source"])
BATCH_SECONDS = Histogram(
    "ingest_batch_seconds",
    "Time to handle one batch",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
