"""Prometheus metrics, counted from the events (bot/events.py), in a registry of their own.

Exposed by `trendbot serve` on /metrics in Prometheus' text format (prometheus-client writes it).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Answers take well under a millisecond on the shipped knowledge and ~10 ms on 100,000 entries.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The counters, histogram and gauges of one running trendbot; `sink` feeds them from events."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter("trendbot_questions", "Messages answered, by platform and outcome "
                                 "(answered, or declined: no good answer, help, errors)",
                                 ["platform", "outcome"], registry=r)
        self.latency = Histogram("trendbot_answer_latency_seconds", "Time to compute an answer", ["platform"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.tips = Counter("trendbot_tips_posted", "Daily tips posted", ["platform"], registry=r)
        self.errors = Counter("trendbot_errors", "Errors, by platform and kind (reply, tip, connection)",
                              ["platform", "kind"], registry=r)
        self.reloads = Counter("trendbot_knowledge_reloads", "Knowledge reloads, by result (reloaded, rejected)",
                               ["result"], registry=r)
        self.entries = Gauge("trendbot_knowledge_entries", "Entries in the knowledge in use, by kind", ["kind"],
                             registry=r)
        self.connected = Gauge("trendbot_platform_connected", "1 when the platform is connected", ["platform"],
                               registry=r)
        self.standby = Gauge("trendbot_platform_standby", "1 when another replica holds the platform's connection "
                             "and this one stands by to take over", ["platform"], registry=r)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "answer": self._answer,
            "tip_posted": lambda f: self.tips.labels(f.get("platform", "")).inc(),
            "tip_failed": lambda f: self.errors.labels(f.get("platform", ""), "tip").inc(),
            "reply_failed": lambda f: self.errors.labels(f.get("platform", ""), "reply").inc(),
            "platform_down": lambda f: self.errors.labels(f.get("platform", ""), "connection").inc(),
            "knowledge_reloaded": lambda f: self.reloads.labels("reloaded").inc(),
            "knowledge_rejected": lambda f: self.reloads.labels("rejected").inc(),
        }

    def sink(self, event: str, fields: dict[str, Any]) -> None:
        """Count one event (bot.events.add_sink(metrics.sink))."""
        handler = self._handlers.get(event)
        if handler is not None:
            handler(fields)

    def _answer(self, f: dict[str, Any]) -> None:
        platform = f.get("platform", "")
        self.questions.labels(platform, "answered" if f.get("answered") else "declined").inc()
        self.latency.labels(platform).observe(float(f.get("latency_ms", 0.0)) / 1000)

    def render(self, connected: Mapping[str, bool], counts: Mapping[str, int],
               standby: Mapping[str, bool] | None = None) -> bytes:
        """The text format, with the gauges set to the state at this moment."""
        for platform, up in connected.items():
            self.connected.labels(platform).set(1 if up else 0)
            self.standby.labels(platform).set(1 if (standby or {}).get(platform) else 0)
        for kind, n in counts.items():
            self.entries.labels(kind).set(n)
        return generate_latest(self.registry)
