"""The MQTT bridge: verified readings and events out to a local broker, with
Home Assistant discovery; valve and siren commands in, as fail-safe ops only.

Downstream of the durable store, never in the CoAP path: an uplink is
answered once it is committed, and all the bridge gets from that path is a
wake-up (`seen`). It reads the committed rows after its cursor
(cursor.py), publishes them QoS 1, and moves the cursor only when the
broker has acknowledged them; a broker outage leaves the rows where they
are, and they go out after the reconnect, oldest first. The cloud forwarder
may take a row meanwhile: its bytes are kept (`Store.hold_after`) until the
bridge has it, for as long as the store keeps the row (`reply_retention`,
24 h; less when the disk runs low). Older rows are counted as skipped.

From Home Assistant only what the gateway's own key may sign is taken:
CLOSE on a meter's valve (valve.close) and ON on a hub's siren (siren.on).
OPEN, OFF, and anything else are refused and logged; nothing is signed or
sent. A fail-safe command goes the way of a local safety rule's: stored,
reported to the cloud, pushed to an always-on node or carried on the next
2.04.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time

import aiomqtt
from prometheus_client import Counter, Gauge

from kapok.protocols import cose, messages

from ..backoff import Backoff
from ..commands import local_report
from ..models import Command
from . import discovery as d
from .cursor import Cursor

log = logging.getLogger(__name__)

BATCH = 128  # rows read and published at a time
SAVE_EVERY = 1.0  # seconds between cursor saves while publishing


class MqttBridge:
    def __init__(self, settings, *, store, registry, book, key, pusher, reporter, metrics):
        self.target = settings.mqtt
        self.prefix = settings.mqtt_discovery_prefix
        self.offline_after = settings.mqtt_offline_after
        self.lifetime = settings.local_command_lifetime
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self.store = store
        self.registry = registry
        self.book = book
        self.key = key
        self.pusher = pusher
        self.reporter = reporter
        self.metrics = metrics
        self.cursor = Cursor(store)
        self.wake = asyncio.Event()
        self.topics: d.Topics | None = None
        self.last_rx: dict[str, int] = {}  # device -> gateway time of its last uplink
        self.learned: dict[str, list[str]] = {}  # entity keys seen beyond the kind's
        self.fw: dict[str, str] = {}
        self.siren_until: dict[str, float] = {}
        self.announced: dict[str, set[str]] = {}  # this session's discovery
        self.availability: dict[str, str] = {}  # this session's availability
        self._last_save = 0.0
        r = metrics.registry
        self.m_connected = Gauge(
            "kapok_agent_mqtt_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.m_published = Counter(
            "kapok_agent_mqtt_published",
            "Messages the MQTT broker acknowledged, by kind",
            ["kind"],
            registry=r,
        )
        self.m_skipped = Counter(
            "kapok_agent_mqtt_skipped",
            "Stored readings gone from the store before the broker could have them",
            registry=r,
        )
        self.m_commands = Counter(
            "kapok_agent_mqtt_commands",
            "Commands received over MQTT, by result (signed, pending, refused)",
            ["result"],
            registry=r,
        )

    # -- from the agent

    async def prepare(self) -> None:
        """Before the forwarder starts: load the cursor and hold the rows after it."""
        if await self.cursor.open():
            log.info("mqtt: first start; readings from now on are published")
        self.last_rx.update(await self.cursor.last_uplinks())

    def seen(self, record) -> None:
        """A new uplink was committed (called in the CoAP path: nothing else)."""
        self.last_rx[record.device] = max(record.rx, self.last_rx.get(record.device, 0))
        self.wake.set()

    async def run(self) -> None:
        try:
            while self.registry.current.version is None:  # no gateway id yet
                await asyncio.sleep(0.5)
            self.topics = d.Topics(self.registry.current.gateway_kid, self.prefix)
            while True:
                level = logging.WARNING if self.backoff.failures == 0 else logging.DEBUG
                try:
                    await self._session()
                    error = "the session ended"
                except aiomqtt.MqttError as e:
                    error = str(e)
                await self.cursor.save()  # what was published, the cloud may drop
                self.m_connected.set(0)
                delay = self.backoff.next_delay()
                log.log(
                    level,
                    "mqtt: broker unavailable; readings wait in the store",
                    extra={"broker": str(self.target), "error": error, "retry_in": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        finally:
            await self.cursor.save()

    # -- one connection

    async def _session(self) -> None:
        t = self.target
        topics = self.topics
        client = aiomqtt.Client(
            t.host,
            t.port,
            username=t.username,
            password=t.password,
            identifier=f"kapok-{topics.gateway}",
            will=aiomqtt.Will(topics.availability, d.OFFLINE, qos=1, retain=True),
            clean_session=True,
            keepalive=30,
            timeout=10,
            tls_context=ssl.create_default_context() if t.tls else None,
            # no Nagle: a batch's PUBACKs would otherwise wait on delayed ACKs
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 4 * BATCH  # a batch in flight is not a worry
        async with client:
            self.announced, self.availability = {}, {}
            await client.publish(topics.availability, d.ONLINE, qos=1, retain=True)
            for topic in topics.commands():
                await client.subscribe(topic, qos=1)
            self.backoff.reset()
            self.m_connected.set(1)
            log.info("mqtt: connected", extra={"broker": str(t), "gateway": topics.gateway})
            out = []
            for device in sorted(self.last_rx):
                if device in self.registry.current.devices:
                    out += self._announce(device, ())
            await self._publish(client, out)
            tasks = [
                asyncio.create_task(job(client))
                for job in (self._publisher, self._listener, self._ticker)
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):  # a clean stop: the will is not sent
                    await client.publish(
                        topics.availability, d.OFFLINE, qos=1, retain=True, timeout=1
                    )

    async def _publish(self, client, out) -> None:
        """Publish [(kind, topic, payload, retain)]; returns once all are acknowledged."""
        if not out:
            return
        await asyncio.gather(
            *(client.publish(topic, body, qos=1, retain=retain) for _, topic, body, retain in out)
        )
        for kind, *_ in out:
            self.m_published.labels(kind).inc()

    # -- readings and events

    async def _publisher(self, client) -> None:
        while True:
            self.wake.clear()
            rows = await self.cursor.rows(BATCH)
            if rows:
                out, skipped = self._messages(rows)
                await self._publish(client, out)
                self.cursor.moved(rows[-1][0])
                if skipped:
                    self.m_skipped.inc(skipped)
                    log.warning(
                        "mqtt: readings pruned from the store before they could be published",
                        extra={"skipped": skipped, "after": self.cursor.position},
                    )
            now = time.monotonic()
            if self.cursor.position != self.cursor.saved and now - self._last_save >= SAVE_EVERY:
                self._last_save = now
                await self.cursor.save()
            if len(rows) < BATCH:
                idle = SAVE_EVERY if self.cursor.position != self.cursor.saved else 5.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await self.wake.wait()

    def _messages(self, rows) -> tuple[list, int]:
        topics = self.topics
        out = []
        skipped = 0
        expected = self.cursor.position + 1
        for row_id, device, rx, cose_bytes in rows:
            skipped += row_id - expected  # ids are dense: a gap is pruned rows
            expected = row_id + 1
            if cose_bytes is None:  # forwarded and dropped before it was held
                skipped += 1
                continue
            try:
                uplink = messages.parse_uplink(cose.parse(cose_bytes)[4], device)
            except (ValueError, cose.CoseError) as e:  # verified once: a bug if ever
                log.error("mqtt: stored uplink unreadable", extra={"row": row_id, "error": str(e)})
                continue
            keys = [r["n"] for r in uplink["readings"]] + [e[0] for e in uplink["events"]]
            learned = self.learned.setdefault(device, [])
            learned += [k for k in dict.fromkeys(keys) if k not in learned and d.entity_for(k)]
            fw = next((r["vs"] for r in uplink["readings"] if r["n"] == "fw"), None)
            renew = fw is not None and fw != self.fw.get(device)
            if renew:
                self.fw[device] = fw
            if device in self.registry.current.devices:
                out += self._announce(device, keys, renew=renew)
            for state in d.state_payloads(uplink, rx):
                out.append(("state", topics.device(device, "state"), d.dumps(state), True))
            for event in d.event_payloads(uplink, rx):
                out.append(("event", topics.device(device, "event"), d.dumps(event), False))
        return out, skipped

    def _announce(self, device: str, keys, *, renew: bool = False) -> list:
        """Discovery for what of `device` is not announced yet in this session
        (all of it with `renew`), then its availability if that changed."""
        topics = self.topics
        kind = self.registry.current.devices[device].kind
        done = self.announced.setdefault(device, set())
        wanted = d.keys_for(kind, [*self.learned.get(device, ()), *keys])
        out = []
        for key in wanted:
            if key in done and not renew:
                continue
            done.add(key)
            config = d.config_payload(topics, device, kind, key, fw=self.fw.get(device))
            out.append(("discovery", topics.config(device, key), d.dumps(config), True))
        return out + self._availability(device)

    def _availability(self, device: str) -> list:
        fresh = time.time() - self.last_rx.get(device, 0) <= self.offline_after
        status = d.ONLINE if fresh else d.OFFLINE
        if self.availability.get(device) == status:
            return []
        self.availability[device] = status
        return [("availability", self.topics.device(device, "availability"), status, True)]

    async def _ticker(self, client) -> None:
        """Availability from the nodes' last uplinks; siren timeouts; devices
        gone from the registry leave Home Assistant (empty retained config)."""
        tick = max(0.05, min(30.0, self.offline_after / 4))
        while True:
            await asyncio.sleep(tick)
            out = []
            devices = self.registry.current.devices
            for device in list(self.announced):
                if device in devices:
                    out += self._availability(device)
                    continue
                for key in self.announced.pop(device):
                    out.append(("discovery", self.topics.config(device, key), b"", True))
                log.info("mqtt: device left the registry; removed", extra={"device": device})
            now = time.monotonic()
            for device, until in list(self.siren_until.items()):
                if until <= now:
                    del self.siren_until[device]
                    out.append(self._siren_state(device, d.SIREN_OFF))
            await self._publish(client, out)

    def _siren_state(self, device: str, state: str):
        return ("siren", self.topics.device(device, "siren/state"), state, False)

    # -- commands from Home Assistant

    async def _listener(self, client) -> None:
        async for message in client.messages:
            parsed = self.topics.parse_command(str(message.topic))
            if parsed is None:
                continue
            device, what = parsed
            text = message.payload
            if isinstance(text, bytes | bytearray):
                text = text.decode("utf-8", "replace")
            text = str(text).strip()
            if not text:  # a retained command being cleared reaches subscribers too
                continue
            if message.retain:
                self._refuse(device, what, text, "a retained command is never taken")
                continue
            await self._command(client, device, what, text)

    def _refuse(self, device: str, what: str, text: str, reason: str) -> None:
        self.m_commands.labels("refused").inc()
        log.warning(
            "mqtt: command refused; nothing signed or sent",
            extra={"device": device, "target": what, "payload": text[:64], "reason": reason},
        )

    async def _command(self, client, device: str, what: str, text: str) -> None:
        node = self.registry.current.devices.get(device)
        if what == "valve":
            if text.upper() != d.VALVE_CLOSE:
                self._refuse(
                    device,
                    what,
                    text,
                    "only CLOSE: the gateway key signs fail-safe ops only "
                    "(opening a valve is the cloud's, and a gas valve also needs "
                    "the button on the meter)",
                )
                return
            if node is None or (
                node.kind not in d.VALVE_KINDS and "valve" not in self.learned.get(device, ())
            ):
                self._refuse(device, what, text, "no such valve")
                return
            op = "valve.close"
        else:
            state = text
            with contextlib.suppress(ValueError, AttributeError):
                state = json.loads(text).get("state", "")  # Home Assistant's JSON form
            if str(state).upper() != d.SIREN_ON:
                self._refuse(device, what, text, "only ON: the gateway key cannot sign siren.off")
                if device in self.siren_until:  # Home Assistant shows what is true
                    await self._publish(client, [self._siren_state(device, d.SIREN_ON)])
                return
            if node is None or node.kind not in d.SIREN_KINDS:
                self._refuse(device, what, text, "no such siren")
                return
            op = "siren.on"
        await self._sign(device, op)
        if op == "siren.on":
            self.siren_until[device] = time.monotonic() + d.SIREN_SECONDS
            await self._publish(client, [self._siren_state(device, d.SIREN_ON)])

    async def _sign(self, device: str, op: str) -> None:
        now = int(time.time())
        if self.book.has_open_local(device, op, now):
            self.m_commands.labels("pending").inc()
            log.info("mqtt: the fail-safe command is already on its way", extra={"op": op})
            return
        cmd_id = self.book.next_local_cmd_id(device)
        not_after = now + self.lifetime
        signed = self.key.sign_failsafe(
            device=device,
            op=op,
            cmd_id=cmd_id,
            not_after=not_after,
            kid=self.registry.current.gateway_kid,
        )
        command = Command(
            device=device, cmd_id=cmd_id, op=op, not_after=not_after, cose=signed, created=now
        )
        await self.store.add_local_commands([command], [local_report(command)])
        self.book.add(command)
        self.metrics.local_commands.labels(op).inc()
        self.m_commands.labels("signed").inc()
        self.pusher.push([command])
        self.reporter.wake.set()
        log.warning(
            "fail-safe command signed",
            extra={"device": device, "op": op, "cmd_id": cmd_id, "source": "mqtt"},
        )
