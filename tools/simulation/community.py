"""The simulated community: which nodes there are, in which units, with
which keys, and registering them with the cloud.

Device ids are `<prefix>gm-0001` (gas), `wm-` (water), `em-` (electricity),
`hub-` (home hubs) for unit 1, 2, ...; `wq-1`, `wq-2` for the community's
water-quality stations (no unit). Unit N is the N-th unit of the
community: buildings of 12 units (6 floors × 2 doors, named 101, 102, 201,
...), the buildings named `1栋`, `2栋`, ....

The state file (`<state dir>/sim.json`, mode 0600: it holds the nodes' secret
keys) keeps every node's key and the seq it continues from, so a
simulation can be stopped and run again against the same cloud: seqs only
ever increase (each run takes a fresh block, as the firmware does at boot).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from kapok.protocols import ed25519, messages

from .node import KINDS, NodeSpec, SimNode

STATE_FILE = "sim.json"
UNITS_PER_BUILDING = 12
DOORS_PER_FLOOR = 2
SEQ_BLOCK = 100_000  # seqs each run reserves per node (a boot's jump)
PREFIXES = {
    "gas-meter": "gm",
    "water-meter": "wm",
    "electricity-meter": "em",
    "hub": "hub",
    "water-quality": "wq",
}
APP_OF_KIND = {
    "gas-meter": "meter",
    "water-meter": "meter",
    "electricity-meter": "meter",
    "water-quality": "water_quality",
    "hub": "hub",
}


class SimStateError(ValueError):
    pass


@dataclass(frozen=True)
class Plan:
    """How many nodes of each kind; `prefix` keeps two simulations on one
    cloud apart."""

    gas: int = 0
    water: int = 0
    electricity: int = 0
    quality: int = 0
    hubs: int = 0
    prefix: str = ""

    def __post_init__(self):
        for name in ("gas", "water", "electricity", "quality", "hubs"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} cannot be negative")
        widest = f"{self.prefix}hub-{max(self.units, 1):04d}"
        if not messages.valid_device_id(widest) or (
            self.prefix and not messages.valid_device_id(self.prefix + "x")
        ):
            raise ValueError(
                f"device ids like {widest!r} would not be valid (1-16 characters of a-z, 0-9, -): "
                "use a shorter --prefix or fewer nodes"
            )

    @property
    def units(self) -> int:
        return max(self.gas, self.water, self.electricity, self.hubs)

    def nodes(self) -> list[NodeSpec]:
        p = self.prefix
        out = []
        for unit in range(1, self.units + 1):
            for kind, count in (
                ("gas-meter", self.gas),
                ("water-meter", self.water),
                ("electricity-meter", self.electricity),
                ("hub", self.hubs),
            ):
                if unit <= count:
                    out.append(NodeSpec(f"{p}{PREFIXES[kind]}-{unit:04d}", kind, unit))
        out.extend(NodeSpec(f"{p}wq-{i}", "water-quality", 0) for i in range(1, self.quality + 1))
        return out


def unit_place(unit: int) -> tuple[str, str]:
    """(building name, unit name) of unit N."""
    building, k = divmod(unit - 1, UNITS_PER_BUILDING)
    floor, door = divmod(k, DOORS_PER_FLOOR)
    return f"{building + 1}栋", f"{floor + 1}{door + 1:02d}"


class SimState:
    """The nodes' identities and counters, and what the cloud calls things."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE
        self.data: dict = {"version": 1, "nodes": {}, "authorities": {}, "units": {}}

    @classmethod
    def load(cls, folder: Path) -> SimState:
        state = cls(folder)
        if state.path.is_file():
            try:
                data = json.loads(state.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise SimStateError(f"{state.path}: not a simulation state ({e})") from None
            if not isinstance(data, dict) or data.get("version") != 1:
                raise SimStateError(f"{state.path}: not a simulation state")
            state.data = data
        return state

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- identities

    def identity(self, spec: NodeSpec, runtime: str = "cpython") -> dict:
        """The node's record, created (with a new key) the first time.
        A node keeps its runtime: a virtual board counts its seqs in its own
        flash, a CPython node in this file, and the two cannot be merged."""
        nodes = self.data["nodes"]
        rec = nodes.get(spec.id)
        if rec is None:
            rec = nodes[spec.id] = {
                "kind": spec.kind,
                "unit": spec.unit,
                "runtime": runtime,
                "seed": secrets.token_bytes(32).hex(),
                "next_seq": 1,
                "last_cmd": {},
            }
        elif rec["kind"] != spec.kind:
            raise SimStateError(f"{spec.id} is a {rec['kind']} in {self.path}, not a {spec.kind}")
        elif rec.get("runtime", "cpython") != runtime:
            raise SimStateError(
                f"{spec.id} ran as a {rec.get('runtime', 'cpython')} node before (its seq counter "
                f"lives there): give this runtime's nodes another --prefix"
            )
        return rec

    def public_key(self, spec: NodeSpec, runtime: str = "cpython") -> bytes:
        return ed25519.public_key(bytes.fromhex(self.identity(spec, runtime)["seed"]))

    def authorities(self) -> dict[str, tuple[bytes, str]]:
        return {
            kid: (bytes.fromhex(key), role) for kid, (key, role) in self.data["authorities"].items()
        }

    def set_authority(self, kid: str, public_key: str, role: str) -> None:
        self.data["authorities"][kid] = [public_key, role]

    def nodes(self, specs: list[NodeSpec], *, block: int = SEQ_BLOCK) -> list[SimNode]:
        """The simulated nodes of `specs`, each continuing from a fresh seq
        block (reserved in the file before any of it is used)."""
        out = []
        authorities = self.authorities()
        for spec in specs:
            rec = self.identity(spec)
            start = rec["next_seq"]
            rec["next_seq"] = start + block
            out.append(
                SimNode(
                    spec,
                    bytes.fromhex(rec["seed"]),
                    authorities,
                    seq=start,
                    last_cmd=dict(rec.get("last_cmd", {})),
                )
            )
        self.save()
        return out

    def remember(self, nodes: list[SimNode]) -> None:
        """Keep what the nodes must not forget: the last command id of each
        authority (seqs are safe in their reserved blocks)."""
        for node in nodes:
            rec = self.data["nodes"][node.id]
            rec["last_cmd"] = dict(node.last_cmd)
            if node.seq >= rec["next_seq"]:
                rec["next_seq"] = node.seq
        self.save()

    def take_seqs(self, spec: NodeSpec, count: int) -> int:
        """Reserve `count` seqs for messages made outside a run (history);
        returns the first."""
        rec = self.identity(spec)
        start = rec["next_seq"]
        rec["next_seq"] = start + count
        return start


# -- the cloud side --------------------------------------------------------------------


def provision(
    cloud,
    state: SimState,
    specs: list[NodeSpec],
    *,
    gateway: str,
    runtime: str = "cpython",
    interval: int | None = None,
    installed_at: float | None = None,
    progress=None,
) -> dict:
    """Register the community's buildings, units and nodes with the cloud
    (those already there are kept: a node already registered with this key
    is fine, with another key an error) and learn the authority keys.
    `cloud` is a CloudClient with an admin's (or the community manager's)
    token. Returns {"community": id, "units": {N: unit id}}."""
    from kapok.tools.cloudclient import CloudClientError

    gw = cloud.gateway(gateway)
    community = gw["community_id"]
    state.data.update({"gateway": gateway, "community": community, "cloud": cloud.base_url})
    for name, key in cloud.keys().items():
        state.set_authority(name, key, "all" if name == "cloud" else "firmware")
    if gw.get("public_key"):
        state.set_authority(gateway, gw["public_key"], "failsafe")

    units_needed = sorted({s.unit for s in specs if s.unit})
    buildings = {b["name"]: b["id"] for b in cloud.buildings(community)}
    existing = {}
    for u in cloud.units(community):
        existing[(u["building_id"], u["name"])] = u["id"]
    unit_ids = {}
    for n in units_needed:
        bname, uname = unit_place(n)
        if bname not in buildings:
            buildings[bname] = cloud.create_building(community, bname)["id"]
        key = (buildings[bname], uname)
        if key not in existing:
            existing[key] = cloud.create_unit(buildings[bname], uname)["id"]
        unit_ids[n] = existing[key]
    state.data["units"] = {str(n): uid for n, uid in unit_ids.items()}

    for spec in specs:
        public = state.public_key(spec, runtime).hex()
        body = {
            "id": spec.id,
            "kind": spec.kind,
            "gateway": gateway,
            "public_key": public,
            # the board the rollouts of its firmware are for
            "board": "virtual" if runtime == "micropython" else "sim",
            "always_on": spec.kind == "hub",
        }
        if spec.unit:
            body["unit"] = unit_ids[spec.unit]
        if interval is not None:
            body["interval"] = int(interval)
        if installed_at is not None:
            body["installed_at"] = installed_at
        try:
            cloud.register_device(body)
        except CloudClientError as e:
            if e.status != 409:
                raise
            there = cloud.device(spec.id)
            if there.get("public_key") != public:
                raise SimStateError(
                    f"{spec.id} is registered in the cloud with another key: give the "
                    "simulation its --state folder of then, or another --prefix"
                ) from None
        if progress is not None:
            progress()
    state.save()
    return {"community": community, "units": unit_ids}


def wait_for_gateway_key(cloud, state: SimState, gateway: str, timeout: float) -> bool:
    """The gateway registers its own key when its agent starts: wait for it
    (nodes take fail-safe commands signed by it). True when known."""
    deadline = time.monotonic() + timeout
    while True:
        key = cloud.gateway(gateway).get("public_key")
        if key:
            state.set_authority(gateway, key, "failsafe")
            state.save()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


__all__ = ["APP_OF_KIND", "KINDS", "Plan", "SimState", "provision", "unit_place"]
