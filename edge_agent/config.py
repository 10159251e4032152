"""Agent settings: one frozen object built by the command line (or a test).

Every tunable lives here with the reason for its default, so the rest of the
agent never hard-codes a limit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_LISTEN = "[::]:5683"
DEFAULT_METRICS = "127.0.0.1:9464"


@dataclass(frozen=True)
class Address:
    """A host and port; IPv6 hosts are written in brackets: `[::1]:5683`."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """`HOST:PORT` or `[V6HOST]:PORT`; ValueError when it is neither."""
        text = text.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
            if not sep:
                raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::]:5683")
            ipaddress.IPv6Address(host.split("%")[0])  # ValueError when it is not one
        else:
            host, sep, port = text.rpartition(":")
            if not sep or not host:
                raise ValueError(f"{text!r}: expected HOST:PORT")
            if ":" in host:
                raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::]:5683")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{text!r}: the port must be 0-65535")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MqttTarget:
    """A broker: `mqtt://[user[:password]@]host[:port]` (1883), or
    `mqtts://...` for TLS (8883, the system's CA store)."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> MqttTarget:
        """ValueError when `text` is not an mqtt:// or mqtts:// URL."""
        url = urlsplit(text.strip())
        if url.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"{text!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        if not url.hostname:
            raise ValueError(f"{text!r}: no broker host")
        if url.path not in ("", "/") or url.query or url.fragment:
            raise ValueError(f"{text!r}: a broker URL has no path, query or fragment")
        try:
            port = url.port
        except ValueError:
            raise ValueError(f"{text!r}: the port must be 1-65535") from None
        tls = url.scheme == "mqtts"
        return cls(
            host=url.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
        )

    def __str__(self) -> str:  # for logs: never the password
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    cloud: str
    """Base URL of the cloud, e.g. https://cloud.example.org."""
    token: str
    """The gateway's bearer token (from `kapok cloud add-gateway`)."""
    data_dir: Path
    listen: Address = Address("::", 5683)
    metrics: Address | None = Address("127.0.0.1", 9464)

    # -- the uplink server
    max_payload: int = 1024
    """DESIGN: uplinks are single datagrams of at most 1024 payload bytes."""
    replay_window: int = 1024
    """How far below a device's highest accepted seq an unseen seq is still
    taken (buffered history may arrive out of order); older ones get 4.01."""
    max_in_flight: int = 20_000
    """Uplinks waiting for the disk at once; past it: 5.03 (overload)."""
    overload_max_age: int = 5
    dedup_entries: int = 32_768
    """CoAP exchanges remembered for duplicate detection (RFC 7252 §4.5)."""

    # -- the durable queue
    max_queue_bytes: int = 512 * 2**20
    """Disk quota for readings not yet forwarded (and rejected ones kept for
    the operator); past it uplinks get 5.03 and the nodes keep their data."""
    min_free_bytes: int = 32 * 2**20
    """Uplinks get 5.03 when the disk has less free space than this, so the
    forwarder (whose bookkeeping needs a little) can still drain the queue."""
    full_max_age: int = 60
    """Max-Age of the 5.03 sent when the queue or the disk is full."""
    reply_retention: float = 24 * 3600
    """Seconds a forwarded reading's row (seq and reply, not its bytes) is
    kept, so a late retransmission gets the very same 2.04."""
    max_page_count: int | None = None
    """SQLite's own size cap in pages (tests use it to reach SQLITE_FULL)."""

    # -- the cloud
    forward_batch: int = 256
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    http_timeout: float = 15.0
    registry_interval: float = 60.0
    unknown_kid_interval: float = 10.0
    """A kid missing from the registry refreshes it at most this often."""
    unknown_kid_wait: float = 2.0
    """How long an uplink with an unknown kid waits for that refresh."""
    command_wait: int = 25
    """Long-poll seconds for `GET /api/v1/gateway/commands`."""
    command_idle_poll: float = 5.0
    """At most one poll per this many seconds while polls bring nothing new
    and come back early (the list holds commands this gateway already has)."""

    # -- commands pushed to always-on nodes
    push_ack_timeout: float = 2.0
    """RFC 7252 ACK_TIMEOUT for POST /c; MAX_RETRANSMIT is 4."""
    push_retry_interval: float = 60.0
    local_command_lifetime: int = 3600
    """not_after of a gateway-signed fail-safe command: now + this."""

    # -- MQTT and Home Assistant (off unless a broker is given; docs/mqtt.md)
    mqtt: MqttTarget | None = None
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_offline_after: float = 3 * 3600
    """A node is `offline` in Home Assistant when its last uplink is older
    than this: three missed uplinks at the firmware's default send_s (1 h)."""
