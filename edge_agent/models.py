"""Records the agent keeps: commands on their way to nodes, and one accepted
uplink with everything that must become durable together with it."""

from __future__ import annotations

from dataclasses import dataclass, field

# Command states at the gateway (the cloud has its own, richer ones).
PENDING = "pending"  # waiting for the node: next 2.04, or a push to /c
CARRIED = "carried"  # rode on the 2.04 of `carried_seq`; proof of receipt pending
DELIVERED = "delivered"  # the node moved past that reply, or ACKed the /c POST
FAILED = "failed"  # expired, or refused by the node's CoAP stack
OPEN_STATES = (PENDING, CARRIED)


@dataclass(slots=True, eq=False)
class Command:
    """A command COSE_Sign1 waiting at (or delivered by) this gateway."""

    device: str
    cmd_id: int
    op: str
    not_after: int
    cose: bytes
    state: str = PENDING
    cloud_id: int | None = None  # the cloud's command id; None for local ones
    event: str | None = None  # local ones: the event that made the gateway sign it
    carried_seq: int | None = None
    created: int = 0
    row: int | None = None  # rowid in the store, set when first stored

    @property
    def local(self) -> bool:
        return self.cloud_id is None


@dataclass(slots=True, eq=False)
class UplinkRecord:
    """One verified uplink and its 2.04, as the store commits it: the reading,
    the device's replay window, command state changes, gateway-signed
    commands and reports for the cloud — one transaction, so a crash keeps
    all of it or none."""

    device: str
    seq: int
    rx: int
    cose: bytes
    reply: bytes
    addr: str | None = None
    command_updates: list[tuple[Command, str, int | None]] = field(default_factory=list)
    new_commands: list[Command] = field(default_factory=list)
    reports: list[tuple[str, dict]] = field(default_factory=list)
    # set by the store's writer
    window: bytes = b""
    high: int = 0
    inserted: bool = False

    @property
    def size(self) -> int:
        """Bytes it takes in the queue quota (row overhead included)."""
        return len(self.cose) + len(self.reply) + ROW_OVERHEAD


# SQLite row and index overhead per queued uplink, roughly: counted so that
# many tiny readings cannot slip past the quota.
ROW_OVERHEAD = 64
