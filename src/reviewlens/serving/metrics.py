"""Prometheus metrics: requests, latency, batch sizes, cache hits and errors, and the ASGI middleware timing requests.

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set), every worker writes its samples to that
directory and ``/metrics`` adds them up, whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

disable_created_metrics()  # no *_created series: they double the output and dashboards ignore them


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # Multiprocess samples live in files, not in a registry; one process has its own registry.
        self.registry = CollectorRegistry()
        where = None if self.multiprocess else self.registry
        self.requests = Counter(
            "reviewlens_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=where
        )
        self.latency = Histogram(
            "reviewlens_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=where,
        )
        self.errors = Counter(
            "reviewlens_errors", "Responses with a 4xx or 5xx status", ["endpoint", "status"], registry=where
        )
        self.batch_size = Histogram(
            "reviewlens_batch_size", "Texts per model call", ["model"], buckets=BATCH_BUCKETS, registry=where
        )
        self.texts = Counter("reviewlens_texts_scored", "Texts scored by the model", ["model"], registry=where)
        self.cache_hits = Counter(
            "reviewlens_cache_hits", "Predictions answered from the cache", ["model"], registry=where
        )
        self.cache_misses = Counter(
            "reviewlens_cache_misses", "Predictions the cache did not hold", ["model"], registry=where
        )
        self.helper_restarts = Counter(
            "reviewlens_helper_restarts", "Times the helper processes were replaced after one died", ["model"],
            registry=where,
        )  # fmt: skip

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by endpoint (unknown paths are "other")."""

    def __init__(self, app: Any, metrics: Metrics, endpoints: Iterable[str]):
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        status = 500

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()
