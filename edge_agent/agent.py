"""The agent: wires the parts together, runs their loops, stops cleanly.

Data directory layout (created if missing, mode 0700):
    gateway.key        the gateway's Ed25519 seed (0600)
    queue.sqlite3      the durable queue (+ -wal, -shm)
    registry.json      the last registry the cloud sent
    fw/<sha256>        cached firmware bundles
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .backoff import Backoff
from .cloud import Cloud, CloudAuthError, CloudError
from .commands import CommandBook, CommandPoller, Reporter, SafetyRules
from .config import Address, Settings
from .endpoint import CoapEndpoint, open_endpoint
from .firmware import FirmwareCache
from .forwarder import Forwarder
from .keys import GatewayKey, load_or_create_seed
from .metrics import Metrics
from .push import Pusher
from .registry import RegistrySync
from .store import Store
from .uplink import UplinkService

log = logging.getLogger(__name__)

REGISTRY_FILE = "registry.json"
FIRMWARE_DIR = "fw"
PRUNE_INTERVAL = 600.0
URGENT_RETENTION = 60.0  # forwarded rows kept when the disk runs low
URGENT_PRUNE_GAP = 10.0
CONTACT_PERSIST_INTERVAL = 30.0


class Agent:
    def __init__(self, settings: Settings):
        self.settings = settings
        s = settings
        self.metrics = Metrics()
        self.store = Store(
            s.data_dir,
            max_queue_bytes=s.max_queue_bytes,
            min_free_bytes=s.min_free_bytes,
            replay_window=s.replay_window,
            max_page_count=s.max_page_count,
        )
        self.cloud = Cloud(s.cloud, s.token, timeout=s.http_timeout, on_contact=self._contact)
        self.registry = RegistrySync(
            self.cloud,
            s.data_dir / REGISTRY_FILE,
            interval=s.registry_interval,
            kid_interval=s.unknown_kid_interval,
            kid_wait=s.unknown_kid_wait,
            backoff_cap=s.backoff_cap,
        )
        self.book = CommandBook()
        self.firmware = FirmwareCache(
            s.data_dir / FIRMWARE_DIR, self.cloud, backoff_cap=s.backoff_cap
        )
        self.forwarder = Forwarder(
            self.cloud,
            self.store,
            self.metrics,
            batch_size=s.forward_batch,
            backoff_base=s.backoff_base,
            backoff_cap=s.backoff_cap,
        )
        self.reporter = Reporter(self.cloud, self.store, backoff_cap=s.backoff_cap)
        self.key: GatewayKey | None = None
        self.coap_address: Address | None = None
        self.metrics_port: int | None = None
        self._transport = None
        self._tasks: list[asyncio.Task] = []
        self.mqtt = None  # the MQTT bridge, with --mqtt

    # -- start and stop

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = GatewayKey(await asyncio.to_thread(load_or_create_seed, s.data_dir))
        await self.store.open()
        self.book.load(await self.store.load_open_commands(), await self.store.last_local_cmd_ids())
        await self.store.set_meta("gateway_public_key", self.key.public_key.hex())
        self.registry.on_change.append(self.firmware.want)
        self.registry.load()
        self.uplinks = UplinkService(
            store=self.store,
            registry=self.registry,
            book=self.book,
            safety=SafetyRules(self.key, self.book, s.local_command_lifetime),
            metrics=self.metrics,
            max_payload=s.max_payload,
            replay_window=s.replay_window,
            max_in_flight=s.max_in_flight,
            full_max_age=s.full_max_age,
            overload_max_age=s.overload_max_age,
        )
        self.uplinks.on_stored = self._stored
        self.store.on_commit = self._committed
        self.endpoint = CoapEndpoint(
            self.uplinks, self.firmware, self.metrics, dedup_entries=s.dedup_entries
        )
        self.pusher = Pusher(
            self.endpoint,
            self.registry,
            self.store,
            self.book,
            ack_timeout=s.push_ack_timeout,
            retry_interval=s.push_retry_interval,
            on_report=self.reporter.wake.set,
        )
        self.poller = CommandPoller(
            self.cloud,
            self.store,
            self.book,
            wait=s.command_wait,
            idle_poll=s.command_idle_poll,
            backoff_cap=s.backoff_cap,
            on_new=self._new_commands,
        )
        if s.mqtt is not None:
            from .mqtt.bridge import MqttBridge  # aiomqtt only when asked for

            self.mqtt = MqttBridge(
                s,
                store=self.store,
                registry=self.registry,
                book=self.book,
                key=self.key,
                pusher=self.pusher,
                reporter=self.reporter,
                metrics=self.metrics,
            )
            await self.mqtt.prepare()  # before the forwarder drops a byte
        self._transport, self.coap_address = await open_endpoint(self.endpoint, s.listen)
        self.metrics.watch(
            queue_depth=lambda: self.store.unsent,
            queue_bytes=lambda: self.store.queue_bytes,
            disk_free=lambda: self.store.check_disk(max_age=0),
            oldest_unsent=lambda: self.store.oldest_unsent,
            last_contact=lambda: self.cloud.last_contact,
            registry_fetched=lambda: self.registry.fetched_at,
            registry_devices=lambda: len(self.registry.current.devices),
            commands=self.book.count,
            reports_pending=lambda: self.reporter.pending,
        )
        if s.metrics is not None:
            self.metrics_port = self.metrics.serve(s.metrics.host, s.metrics.port)
        loop = asyncio.get_running_loop()
        loops = [("mqtt", self.mqtt.run)] if self.mqtt is not None else []
        for name, loop_fn in (
            *loops,
            ("registry", self.registry.run),
            ("forwarder", self.forwarder.run),
            ("reporter", self.reporter.run),
            ("commands", self.poller.run),
            ("push", self.pusher.run),
            ("firmware", self.firmware.run),
            ("gateway-key", self._register_key),
            ("prune", self._prune),
            ("contact", self._save_contact),
        ):
            task = loop.create_task(self._guard(name, loop_fn), name=f"kapok-{name}")
            self._tasks.append(task)
        self.pusher.push(self.book.all_open())
        log.info(
            "agent started",
            extra={
                "listen": str(self.coap_address),
                "cloud": self.cloud.base_url,
                "metrics": self.metrics_port,
                "mqtt": str(s.mqtt) if s.mqtt is not None else None,
                "gateway_public_key": self.key.public_key.hex(),
                "queue_depth": self.store.unsent,
            },
        )

    async def stop(self) -> None:
        """Stop taking uplinks, answer those in hand, commit, then close."""
        log.info("agent stopping")
        await self.endpoint.drain()
        self.registry.close()
        self.pusher.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.cloud.last_contact is not None:
            await self.store.set_meta("last_cloud_contact", str(int(self.cloud.last_contact)))
        await self.store.close()
        if self._transport is not None:
            self._transport.close()
        self.metrics.close()
        await self.cloud.close()
        log.info("agent stopped", extra={"queue_depth": self.store.unsent})

    # -- background loops

    async def _guard(self, name: str, loop_fn) -> None:
        """Run one loop for the agent's lifetime; a crash is logged and the
        loop restarted after a pause rather than silently lost. (A full disk
        makes the same crash repeat: the traceback is logged once.)"""
        last = None
        while True:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                what = f"{type(e).__name__}: {e}"
                if what != last:
                    log.exception("agent task crashed; restarting it", extra={"task": name})
                else:
                    log.error("agent task crashed again", extra={"task": name, "error": what})
                last = what
                await asyncio.sleep(5.0)

    async def _register_key(self) -> None:
        backoff = Backoff(1.0, self.settings.backoff_cap)
        while True:
            try:
                await self.cloud.put_key(self.key.public_key)
            except CloudAuthError as e:
                log.error("gateway key: the cloud refused the token", extra={"error": str(e)})
            except CloudError as e:
                log.warning("gateway key not registered yet", extra={"error": str(e)})
            else:
                log.info("gateway key registered", extra={"public_key": self.key.public_key.hex()})
                self.reporter.ready.set()
                return
            await asyncio.sleep(backoff.next_delay())

    async def _prune(self) -> None:
        """Drop forwarded rows after `reply_retention`; at once (keeping the
        last minute) when the disk runs low and uplinks are being refused."""
        while True:
            urgent = self.store.space_wanted.is_set()
            self.store.space_wanted.clear()
            keep = URGENT_RETENTION if urgent else self.settings.reply_retention
            pruned = await self.store.prune(int(time.time() - keep))
            if pruned:
                log.info("pruned forwarded rows", extra={"rows": pruned, "urgent": urgent})
            if urgent:
                await asyncio.sleep(URGENT_PRUNE_GAP)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PRUNE_INTERVAL):
                    await self.store.space_wanted.wait()

    # -- events

    def _committed(self, records) -> None:
        self.metrics.commit_group.observe(len(records))

    def _stored(self, record, local_commands) -> None:
        self.forwarder.wake.set()
        if self.mqtt is not None:
            self.mqtt.seen(record)
        if record.reports:
            self.reporter.wake.set()
        if local_commands:
            self.pusher.push([c for c in local_commands if c.device != record.device])

    def _new_commands(self, commands) -> None:
        self.reporter.wake.set()
        self.pusher.push(commands)

    def _contact(self, ok: bool) -> None:
        self.metrics.cloud_reachable.set(1 if ok else 0)

    async def _save_contact(self) -> None:
        """Keep the last cloud contact in the store for `kapok agent status`:
        the first one at once, then at most every CONTACT_PERSIST_INTERVAL."""
        saved = None
        while True:
            contact = self.cloud.last_contact
            if contact is not None and (
                saved is None or contact - saved >= CONTACT_PERSIST_INTERVAL
            ):
                await self.store.set_meta("last_cloud_contact", str(int(contact)))
                saved = contact
            await asyncio.sleep(1.0)


async def run_until_signalled(settings: Settings) -> None:
    """`kapok agent run`: start, serve until SIGTERM/SIGINT, stop cleanly."""
    import signal

    agent = Agent(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()
