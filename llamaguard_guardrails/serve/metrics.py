"""Prometheus metrics of one server (a registry of its own, so several apps in one process never collide)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..core.verdict import Verdict

_STAGES = {"User": "input", "Agent": "output"}


class ServeMetrics:
    """Requests, verdicts by stage and category, latency, batch sizes, queue depth, errors, cache hits."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llamaguard_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"], registry=r
        )
        self.latency = Histogram(
            "llamaguard_request_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.verdicts = Counter(
            "llamaguard_verdicts",
            "Verdicts by stage (input: a user message, output: an agent message), status and category",
            ["stage", "status", "category"],
            registry=r,
        )
        self.batch_size = Histogram(
            "llamaguard_batch_prompts",
            "Prompts per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.pending = Gauge("llamaguard_pending_checks", "Checks admitted and not finished (queue depth)", registry=r)
        self.errors = Counter("llamaguard_errors", "Failed requests by kind", ["kind"], registry=r)
        self.cache_hits = Counter("llamaguard_verdict_cache_hits", "Verdicts served from the verdict cache", registry=r)

    def verdict(self, verdict: Verdict) -> None:
        stage = _STAGES.get(verdict.checked_role, verdict.checked_role)
        for category in verdict.categories or ["none"]:
            self.verdicts.labels(stage, verdict.status, category).inc()
        if verdict.cached:
            self.cache_hits.inc()

    def watch_kv_store(self, backend: Any) -> None:
        """Export the size of the backend's prefix KV store (when it has one) at each scrape."""
        store = getattr(backend, "kv_store", None)
        if store is not None:
            self.registry.register(_KVStoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _KVStoreCollector:
    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Sequence[GaugeMetricFamily]:
        entries = GaugeMetricFamily("llamaguard_kv_prefix_entries", "Conversation prefixes whose KV cache is kept")
        entries.add_metric([], len(self.store))
        size = GaugeMetricFamily("llamaguard_kv_prefix_bytes", "Bytes of kept prefix KV caches")
        size.add_metric([], self.store.nbytes)
        return [entries, size]

    def describe(self) -> Sequence[GaugeMetricFamily]:
        return []
