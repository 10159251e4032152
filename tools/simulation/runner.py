"""Running simulated CPython nodes against a gateway: each node on its own
schedule, speaking CoAP over real UDP, with the incidents of a script.

    sim = Simulation(nodes, ("127.0.0.1", 5683), interval=60, incidents=[...])
    await sim.run(duration=300)          # or until sim.stop() is called
    sim.stats                            # what happened

A node sends its routine uplink every `interval` seconds (± 5 %, the first
ones spread over `first_within` seconds so a thousand nodes do not all
start at once), and at once when its own logic raises an alarm (a leak
shuts its valve first, as the firmware does). Commands in the gateway's
reply run at once and their results go up in another uplink right away;
hubs also take `POST /c` on their own socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kapok.protocols import cbor, coap, messages
from kapok.protocols import coap_numbers as n

from .incidents import DEVICE_KIND, Incident
from .node import METHANE_ALARM_LEL, SimNode
from .radio import Radio, RadioError

NODES_PER_RADIO = 200  # meters sharing one socket
TICK_S = 0.1  # how often watched nodes run their own logic (leak detection)
MAX_ROUNDS = 4  # uplinks in a row while results or alarms wait
BACKOFF_S = (5, 10, 20, 40, 60)
LEAK_LEL = 35.0  # methane at a gas leak, %LEL (alarm at 10)
EXCURSION_NTU = 4.5  # turbidity of a water-quality excursion


class IncidentTargetError(ValueError):
    pass


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # CoAP code -> count
    unavailable: int = 0  # 5.03: the gateway asked to wait
    unanswered: int = 0
    commands: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def latency(self, q: float) -> float | None:
        data = self.latencies_ms
        if len(data) < 2:
            return data[0] if data else None
        return statistics.quantiles(data, n=100, method="inclusive")[int(q * 100) - 1]

    def line(self) -> str:
        refused = sum(self.refused.values())
        p50, p95 = self.latency(0.5), self.latency(0.95)
        lat = "" if p50 is None else f", ack p50 {p50:.0f} ms p95 {p95:.0f} ms"
        return (
            f"{self.acked} uplinks acknowledged, {refused} refused, {self.unavailable} told "
            f"to wait, {self.unanswered} unanswered, {self.commands} commands run{lat}"
        )


def resolve_target(incident: Incident, nodes: list[SimNode]) -> SimNode:
    """The node an incident happens to: by device id, or unit-N and the
    device of the kind the incident is about."""
    by_id = {node.id: node for node in nodes}
    want = DEVICE_KIND[incident.kind]
    node = by_id.get(incident.target)
    if node is None and incident.unit_index is not None:
        in_unit = [x for x in nodes if x.spec.unit == incident.unit_index]
        if want is not None:
            in_unit = [x for x in in_unit if x.spec.kind == want]
        node = in_unit[0] if in_unit else None
    if node is None:
        raise IncidentTargetError(f"{incident}: no simulated node {incident.target!r}")
    if want is not None and node.spec.kind != want:
        raise IncidentTargetError(f"{incident}: {node.id} is a {node.spec.kind}, not a {want}")
    return node


class Simulation:
    def __init__(
        self,
        nodes: list[SimNode],
        gateway: tuple[str, int],
        *,
        interval: float = 60.0,
        incidents: list[Incident] = (),
        first_within: float | None = None,
        log: Callable[[str], None] | None = None,
        refresh_authorities: Callable[[], Awaitable[bool]] | None = None,
    ):
        self.nodes = nodes
        self.gateway = gateway
        self.interval = interval
        for node in nodes:
            node.interval = interval
        self.first_within = interval if first_within is None else first_within
        self.incidents = [(i, resolve_target(i, nodes)) for i in incidents]
        self.log = log or (lambda text: None)
        self.refresh_authorities = refresh_authorities
        self.stats = Stats()
        self.crashed: list[tuple[str, Exception]] = []
        self._stop = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {}
        self._watched: set[str] = set()
        self._radios: list[Radio] = []
        self.started: float | None = None

    def stop(self) -> None:
        self._stop.set()

    # -- running

    async def run(self, duration: float | None = None) -> Stats:
        self.started = time.time()
        try:
            radio_of = await self._open_radios()
            loops = [(node.id, self._node_loop(node, radio_of[node.id])) for node in self.nodes]
            loops += [("ticker", self._ticker()), ("script", self._script())]
            if self.refresh_authorities is not None:
                loops.append(("authorities", self._authorities()))
            tasks = [asyncio.create_task(self._guard(name, coro)) for name, coro in loops]
            if duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), duration)
            else:
                await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for radio in self._radios:
                radio.close()
        return self.stats

    async def _guard(self, name: str, coro) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in one node must not pass unseen
            self.log(f"{name} stopped: {type(e).__name__}: {e}")
            self.crashed.append((name, e))

    async def _open_radios(self) -> dict[str, Radio]:
        radio_of = {}
        shared = None
        count = 0
        for node in self.nodes:
            self._wake[node.id] = asyncio.Event()
            if node.spec.kind in ("hub", "water-quality"):
                self._watched.add(node.id)  # their own logic runs all the time
            if node.spec.kind == "hub":
                radio = await Radio.open(self.gateway, on_request=self._command_server(node))
                self._radios.append(radio)
                radio_of[node.id] = radio
                continue
            if shared is None or count >= NODES_PER_RADIO:
                shared = await Radio.open(self.gateway)
                self._radios.append(shared)
                count = 0
            radio_of[node.id] = shared
            count += 1
        return radio_of

    async def _node_loop(self, node: SimNode, radio: Radio) -> None:
        wake = self._wake[node.id]
        due = time.monotonic() + random.uniform(0, self.first_within)
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, due - time.monotonic()))
            wake.clear()
            if node.physics.silent:
                due = time.monotonic() + node.interval
                continue
            ok, hold = await self._exchange(node, radio)
            if ok:
                failures = 0
                due = time.monotonic() + node.interval * random.uniform(0.95, 1.05)
            else:
                wait = hold if hold is not None else BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                due = time.monotonic() + min(wait, max(node.interval, 5))

    async def _exchange(self, node: SimNode, radio: Radio) -> tuple[bool, float | None]:
        """Send until nothing waits (results, alarms), at most MAX_ROUNDS
        uplinks; (all acknowledged?, seconds the gateway asked to wait)."""
        for _ in range(MAX_ROUNDS):
            now = time.time()
            self._local_logic(node, now)
            seq, msg = node.uplink(now)
            self.stats.sent += 1
            t0 = time.monotonic()
            try:
                resp = await radio.request(n.POST, "u", msg, n.CF_COSE_SIGN1)
            except RadioError:
                self.stats.unanswered += 1
                return False, None
            if resp.code == n.CHANGED:
                self.stats.acked += 1
                self.stats.latencies_ms.append((time.monotonic() - t0) * 1000)
                try:
                    results = node.on_reply(resp.payload, time.time())
                except ValueError as e:
                    self.log(f"{node.id}: the gateway's reply makes no sense ({e})")
                    return False, None
                for result in results:
                    self._report_command(node, result)
                if not results and not node.alarm_waiting():
                    return True, None
                continue
            if resp.code == n.SERVICE_UNAVAILABLE:
                self.stats.unavailable += 1
                return False, float(resp.max_age or 60)
            code = n.code_str(resp.code)
            self.stats.refused[code] = self.stats.refused.get(code, 0) + 1
            if self.stats.refused[code] <= 3:
                why = resp.payload.decode("utf-8", "replace")
                self.log(f"{node.id}: uplink {seq} refused, {code} {why}")
            return False, None
        return True, None

    def _local_logic(self, node: SimNode, now: float) -> bool:
        """The node's own logic (node.check); says what it did. True when
        an alarm waits to go up."""
        before = len(node.events)
        alarm = node.check(now)
        for code, _, value in node.events[before:]:
            what = code if value is None else f"{code} ({value:g})"
            shut = " - the node shut its valve first" if code in ("gas.leak", "water.leak") else ""
            self.log(f"{node.id}: {what} raised{shut}")
        return alarm

    def _report_command(self, node: SimNode, result: tuple) -> None:
        self.stats.commands += 1
        cmd_id, code, detail = result
        op = node.commands_run[-1][0] if node.commands_run and code != 1 else "command"
        verdict = messages.RESULTS.get(code, str(code))
        extra = f" ({detail})" if detail else ""
        self.log(f"{node.id}: {op} {cmd_id}: {verdict}{extra}")

    def _command_server(self, node: SimNode):
        """A hub's `POST /c`, as the firmware's CommandServer answers it."""

        async def handle(request: coap.Message, addr) -> coap.Message:
            if request.uri_path != ["c"]:
                raise coap.NotFound("no such resource")
            if request.code != n.POST:
                raise coap.MethodNotAllowed("POST only")
            result = node.run_command(request.payload, time.time())
            if result is None:
                raise coap.BadRequest("not a command, or one already decided")
            if result[1] == messages.E_SIGNATURE:
                raise coap.Unauthorized(result[2] or "bad signature")
            self._report_command(node, result)
            self._wake[node.id].set()  # the result goes up at once
            body = cbor.dumps({1: result[0], 2: result[1]})
            return coap.ack_for(request, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])

        return handle

    async def _ticker(self) -> None:
        """The nodes' own logic, for those it matters to now."""
        by_id = {node.id: node for node in self.nodes}
        while True:
            now = time.time()
            for node_id in list(self._watched):
                node = by_id[node_id]
                if self._local_logic(node, now):
                    self._wake[node_id].set()
                if (
                    node.spec.kind not in ("hub", "water-quality")
                    and node.reopen_at is None
                    and node.physics == type(node.physics)()
                ):
                    self._watched.discard(node_id)
            # nodes with a valve waiting for the resident's press
            for node in self.nodes:
                if node.reopen_at is not None:
                    self._watched.add(node.id)
            await asyncio.sleep(TICK_S)

    async def _script(self) -> None:
        """Start and end the incidents on time."""
        assert self.started is not None
        events = []
        for incident, node in self.incidents:
            events.append((incident.at, True, incident, node))
            if incident.lasts is not None:
                events.append((incident.at + incident.lasts, False, incident, node))
        events.sort(key=lambda e: (e[0], not e[1]))
        for at, begin, incident, node in events:
            delay = self.started + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._apply(incident, node, begin)

    def _apply(self, incident: Incident, node: SimNode, begin: bool) -> None:
        p = node.physics
        kind = incident.kind
        if kind == "gas-leak":
            p.methane = LEAK_LEL if begin else 0.0
        elif kind == "water-leak":
            p.leak = begin
        elif kind == "smoke":
            p.smoke = begin
        elif kind == "quality":
            p.turb = EXCURSION_NTU if begin else None
        elif kind == "silent":
            p.silent = begin
        self._watched.add(node.id)
        what = {
            "gas-leak": f"gas leak at {node.id} (unit {node.spec.unit}, {LEAK_LEL:g} %LEL)",
            "water-leak": f"water leak at {node.id} (unit {node.spec.unit})",
            "smoke": f"smoke at {node.id} (unit {node.spec.unit})",
            "quality": f"turbidity {EXCURSION_NTU} NTU at {node.id}",
            "silent": f"{node.id} goes silent",
        }[kind]
        self.log(("incident: " if begin else "incident over: ") + what)
        if begin and kind in ("gas-leak", "water-leak", "smoke"):
            self._wake[node.id].set()

    async def _authorities(self) -> None:
        """Until the gateway's key is known (its agent registers it when it
        starts), ask again now and then."""
        while True:
            try:
                if await self.refresh_authorities():
                    return
            except Exception as e:  # the cloud being away is no reason to stop
                self.log(f"authority keys not refreshed: {e}")
            await asyncio.sleep(5)


__all__ = ["METHANE_ALARM_LEL", "IncidentTargetError", "Simulation", "Stats", "resolve_target"]
