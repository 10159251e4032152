"""A few nodes running the real firmware: each a board image (the .mpy files
that ship to boards) booted on the virtual board (tools/virtualboard: the
MicroPython WebAssembly port under Node, emulated peripherals, real UDP).

Each node's flash is a folder `<state>/boards/<device id>/`: its seq, outbox
and command ids live there as on a real board, so a node keeps counting
across runs. Incidents change the physical world around it (methane at the
gas meter's head, water on the leak probe, turbidity at the probes, smoke)
or cut its power (silent); the firmware does the rest.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .community import APP_OF_KIND, SimState
from .incidents import Incident
from .node import NodeSpec, SimNode

BOOT_TIMEOUT_S = 120.0
# The world around each kind of node at power-on, and its app options.
SETUP = {
    "gas-meter": {
        "cjt188": {"type": 0x30},
        "world": {"meter.flow": 0.05, "valve.travel_ms": 1000},
    },
    "water-meter": {"cjt188": {"type": 0x10}, "world": {"meter.flow": 0.03}},
    "electricity-meter": {"world": {"meter.power": 0.6}},
    "water-quality": {},
    "hub": {},
}
OPTIONS = {
    # the methane head warms up for minutes on a real meter; here at once
    "gas-meter": {"methane": {"warmup_s": 1}},
    "water-meter": {"leak": True},  # a leak probe: the node stays awake for it
    "water-quality": {"check_s": 5, "debounce": 2},
}
INCIDENT_WORLD = {
    "gas-leak": ({"methane": 35}, {"methane": 0}),
    "water-leak": ({"leak": 1}, {"leak": 0}),
    "smoke": ({"smoke": 1}, {"smoke": 0}),
    "quality": ({"water.turb": 4.5}, {"water.turb": 0.4}),
}


def node_config(spec: NodeSpec, seed: bytes, authorities, gateway, interval: int) -> dict:
    """The config the node keeps in its flash (firmware/runtime/config.py)."""
    return {
        "id": spec.id,
        "kind": spec.kind,
        "app": APP_OF_KIND[spec.kind],
        "board": "virtual",
        "gateway": [gateway[0], gateway[1]],
        "seed": seed,
        "authorities": {kid: [key, role] for kid, (key, role) in authorities.items()},
        "sample_s": interval,
        "send_s": interval,
        "options": OPTIONS.get(spec.kind, {}),
    }


class VirtualNodes:
    """The virtual boards of `specs`; start(), apply incidents, stop()."""

    def __init__(
        self,
        specs: list[NodeSpec],
        state: SimState,
        gateway: tuple[str, int],
        *,
        interval: int,
        log: Callable[[str], None] | None = None,
    ):
        self.specs = specs
        self.state = state
        self.gateway = gateway
        self.interval = max(5, int(interval))
        self.log = log or (lambda text: None)
        self.boards: dict[str, object] = {}
        self.folder = state.folder / "boards"
        self._threads: list[threading.Thread] = []

    def start(self, on_booted: Callable[[str], None] | None = None) -> None:
        """Build each node's image (kept: its /data is the node's memory)
        and boot it; returns when every node runs its app."""
        from kapok.tools.virtualboard import VirtualBoard, build_image

        authorities = self.state.authorities()
        for spec in self.specs:
            rec = self.state.identity(spec, "micropython")
            model = SimNode(spec, bytes.fromhex(rec["seed"]), {})
            config = node_config(
                spec, bytes.fromhex(rec["seed"]), authorities, self.gateway, self.interval
            )
            image = build_image(
                self.folder / spec.id, app=APP_OF_KIND[spec.kind], config=config, compiled=True
            )
            setup = dict(SETUP[spec.kind])
            world = dict(setup.get("world", {}))
            if spec.kind in ("gas-meter", "water-meter"):
                world.setdefault("meter.vol", round(model.start_register, 2))
            elif spec.kind == "electricity-meter":
                world.setdefault("meter.energy", round(model.start_register, 2))
            setup["world"] = world
            board = VirtualBoard(image, setup=setup)
            board.start()
            self.boards[spec.id] = board
            if board.wait_console("kapok: node", timeout=BOOT_TIMEOUT_S) is None:
                raise RuntimeError(f"virtual board {spec.id} did not start: {board.console[-3:]}")
            self._drain(spec.id, board)
            self.log(f"{spec.id}: real firmware running on a virtual board ({image})")
            if on_booted is not None:
                on_booted(spec.id)
        self.state.save()

    def _drain(self, device: str, board) -> None:
        """Read the board's events (they would pile up otherwise) into its
        log file; the firmware's own words about valves and alarms go to
        the simulation's log too."""
        log_path = self.folder / f"{device}.log"

        def run():
            with open(log_path, "a", encoding="utf-8") as out:
                while True:
                    event = board.read_event(timeout=1.0)
                    if event is None:
                        if not board.running:
                            return
                        continue
                    if event.get("event") == "console":
                        text = event.get("text", "")
                        out.write(text + "\n")
                        out.flush()
                    elif (
                        event.get("event") == "output"
                        and event.get("name") == "motor.close"
                        and event.get("value") == 1
                    ):
                        self.log(f"{device}: the firmware drives its valve shut")

        thread = threading.Thread(target=run, daemon=True, name=f"vb-{device}")
        thread.start()
        self._threads.append(thread)

    def has(self, device: str) -> bool:
        return device in self.boards

    def apply(self, incident: Incident, device: str, begin: bool) -> None:
        board = self.boards[device]
        if incident.kind == "silent":
            board.power_cut() if begin else board.power_on()
        else:
            board.set(INCIDENT_WORLD[incident.kind][0 if begin else 1])
        self.log(("incident: " if begin else "incident over: ") + f"{incident.kind} at {device}")

    def run_script(self, incidents: list[tuple[Incident, str]], started: float, stop) -> None:
        """Apply (incident, device) pairs on time until `stop` (an Event) is set."""
        events = []
        for incident, device in incidents:
            events.append((incident.at, True, incident, device))
            if incident.lasts is not None:
                events.append((incident.at + incident.lasts, False, incident, device))
        for at, begin, incident, device in sorted(events, key=lambda e: (e[0], not e[1])):
            if stop.wait(max(0.0, started + at - time.time())):
                return
            self.apply(incident, device, begin)

    def stop(self) -> None:
        for board in self.boards.values():
            with contextlib.suppress(Exception):
                board.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    def flash_folder(self, device: str) -> Path:
        return self.folder / device
