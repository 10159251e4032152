"""Prometheus metrics of one agent, served on a local HTTP port.

A registry of its own (not prometheus_client's global one), so several
agents can live in one process (tests, benchmarks). Gauges that mirror
agent state are read when scraped, so they are never stale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# uplink results, the label values of kapok_agent_uplinks_total
UPLINK_RESULTS = (
    "stored",  # new reading, durably stored, 2.04
    "duplicate",  # seq already stored: the first reply again
    "retransmit",  # CoAP-level duplicate (same message id): cached response
    "bad_request",  # 4.00 malformed CoAP/CBOR/COSE/uplink
    "unknown_kid",  # 4.01 kid not in the registry, even after a refresh
    "bad_signature",  # 4.01 signature or MAC does not verify
    "replay",  # 4.01 seq below the replay window
    "too_large",  # 4.13 over the size limit, or Block1
    "full",  # 5.03 quota or disk full
    "overload",  # 5.03 too many uplinks waiting for the disk
    "error",  # anything else (5.00 / 5.03)
)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.uplinks = Counter(
            "kapok_agent_uplinks", "Uplinks handled, by result", ["result"], registry=r
        )
        self.uplink = {name: self.uplinks.labels(name) for name in UPLINK_RESULTS}
        self.commit_group = Histogram(
            "kapok_agent_commit_group_size",
            "Uplinks made durable by one commit (one fsync)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.queue_depth = Gauge(
            "kapok_agent_queue_depth", "Readings stored and not yet taken by the cloud", registry=r
        )
        self.queue_bytes = Gauge(
            "kapok_agent_queue_bytes",
            "Bytes counted against --max-queue-bytes (unsent readings and kept rejects)",
            registry=r,
        )
        self.disk_free = Gauge(
            "kapok_agent_disk_free_bytes",
            "Free bytes on the data directory's filesystem",
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "kapok_agent_queue_oldest_age_seconds",
            "Age of the oldest reading not yet taken by the cloud (0 when none)",
            registry=r,
        )
        self.forwarded = Counter(
            "kapok_agent_forwarded",
            "Readings the cloud answered for, by outcome",
            ["outcome"],
            registry=r,
        )
        self.forward_latency = Histogram(
            "kapok_agent_forward_latency_seconds",
            "From receipt at the gateway to the cloud's answer",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
            registry=r,
        )
        self.cloud_reachable = Gauge(
            "kapok_agent_cloud_reachable", "1 when the cloud answered the last request", registry=r
        )
        self.cloud_last_contact = Gauge(
            "kapok_agent_cloud_last_contact_timestamp_seconds",
            "Unix time of the cloud's last answer (0: never since start)",
            registry=r,
        )
        self.registry_age = Gauge(
            "kapok_agent_registry_age_seconds",
            "Seconds since the cloud last confirmed the registry (NaN: never)",
            registry=r,
        )
        self.registry_devices = Gauge(
            "kapok_agent_registry_devices", "Devices in the registry", registry=r
        )
        self.commands = Gauge(
            "kapok_agent_commands",
            "Commands at the gateway by state (delivered and failed: since start)",
            ["state"],
            registry=r,
        )
        self.local_commands = Counter(
            "kapok_agent_local_commands",
            "Fail-safe commands signed by the gateway key, by op",
            ["op"],
            registry=r,
        )
        self.reports_pending = Gauge(
            "kapok_agent_reports_pending",
            "Reports for the cloud waiting to be sent (first page)",
            registry=r,
        )
        self._server = None

    def watch(
        self,
        *,
        queue_depth: Callable[[], float],
        queue_bytes: Callable[[], float],
        disk_free: Callable[[], float],
        oldest_unsent: Callable[[], float | None],
        last_contact: Callable[[], float | None],
        registry_fetched: Callable[[], float | None],
        registry_devices: Callable[[], float],
        commands: Callable[[str], float],
        reports_pending: Callable[[], float],
    ) -> None:
        """Bind the scrape-time gauges to the agent's state."""
        self.queue_depth.set_function(queue_depth)
        self.queue_bytes.set_function(queue_bytes)
        self.disk_free.set_function(disk_free)

        def oldest_age():
            t = oldest_unsent()
            return 0.0 if t is None else max(0.0, time.time() - t)

        self.queue_oldest_age.set_function(oldest_age)
        self.cloud_last_contact.set_function(lambda: last_contact() or 0.0)

        def registry_age():
            t = registry_fetched()
            return math.nan if t is None else max(0.0, time.time() - t)

        self.registry_age.set_function(registry_age)
        self.registry_devices.set_function(registry_devices)
        for state in ("pending", "carried", "delivered", "failed"):
            self.commands.labels(state).set_function(lambda s=state: commands(s))
        self.reports_pending.set_function(reports_pending)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics; returns the bound port."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
