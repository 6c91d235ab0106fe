"""This process's Prometheus figures (prometheus-client), in a registry of its own.

No global registry: the ``App`` owns one ``Metrics``; the dispatcher counts into it as it
claims, sends and records, and ``/metrics`` (``alerts serve``) and a worker's metrics
listener (``[metrics] listen``) render it. Counters and histograms are per process —
Prometheus adds the processes up (``sum by (channel, state) (rate(alerts_deliveries_total[5m]))``).
The gauges of the whole database (open deliveries, the oldest due one, the scheduler's lag)
are set by ``alerts.delivery.gauges`` from cheap indexed queries, at most every few seconds,
so a scrape never scans the deliveries.

Metric names, all prefixed ``alerts_``:

- ``deliveries_total{channel,state}``: outcomes this process recorded, by the state they
  moved the delivery to (sent, deferred, failed, suppressed).
- ``claimed_total{channel}``: deliveries this process claimed.
- ``send_latency_seconds{channel}``: one channel send (hand-over to answer).
- ``claim_latency_seconds{channel}``: one claiming transaction (a claim round trip).
- ``deliveries_open{channel,state}``, ``queue_depth``: deliveries not yet final (database).
- ``queue_oldest_due_seconds``: how long the oldest due, unclaimed delivery has waited.
- ``scheduler_lag_seconds``: how late the most overdue follow-up or scheduled alert is.
- ``senders_held_total{ended}``: times ``alerts serve``'s senders gave way to an officer's or
  the API's read (``alerts.delivery.give_way``): ended ``answered`` (the reads were answered)
  or ``limit`` (the hold ran out with reads still in flight: a steady stream of them).
- ``process_*``, ``python_*``: the process (CPU, memory, open files, GC).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector

#: Seconds: a loopback sink answers in a millisecond, a slow relay or the Bot API in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: The text exposition format's content type, as ``generate_latest`` writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The figures of one process (see the module docstring for the names)."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.deliveries = Counter(
            "alerts_deliveries",
            "Delivery outcomes recorded by this process, by channel and the state they moved to.",
            ["channel", "state"],
            registry=r,
        )
        self.claimed = Counter(
            "alerts_claimed", "Deliveries claimed by this process, by channel.", ["channel"], registry=r
        )
        self.send_latency = Histogram(
            "alerts_send_latency_seconds",
            "Time from handing a message to its channel to its answer.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.claim_latency = Histogram(
            "alerts_claim_latency_seconds",
            "Time of one claiming transaction (due deliveries taken under a lease).",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.open_deliveries = Gauge(
            "alerts_deliveries_open",
            "Deliveries not yet final in the database, by channel and state (refreshed every few seconds).",
            ["channel", "state"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "alerts_queue_depth",
            "Deliveries not yet final in the database (refreshed every few seconds).",
            registry=r,
        )
        self.oldest_due = Gauge(
            "alerts_queue_oldest_due_seconds",
            "How long the oldest due delivery has waited to be claimed (0: none waiting).",
            registry=r,
        )
        self.scheduler_lag = Gauge(
            "alerts_scheduler_lag_seconds",
            "How late the most overdue follow-up or scheduled alert is (0: none overdue).",
            registry=r,
        )

        self.senders_held = Counter(
            "alerts_senders_held",
            "Times the senders gave way to the web's reads, by how the hold ended (answered, limit).",
            ["ended"],
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
