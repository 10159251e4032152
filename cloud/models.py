"""The cloud's data model (SQLAlchemy 2, typed `Mapped[]`).

community → building → unit → devices; gateways belong to a community and
devices to a gateway (and so to its community). Every time is a Unix time in
seconds (float), as on the wire; nothing here depends on the server's zone.

Readings keep a link to the message that carried them, and messages keep the
node's original COSE bytes, so any stored or exported reading can be
re-verified against the node's public key.
"""

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

# Named constraints, so migrations can refer to them (SQLite batch mode too).
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY
BigId = BigInteger().with_variant(Integer(), "sqlite")

DEVICE_KINDS = ("gas-meter", "water-meter", "electricity-meter", "water-quality", "hub")
ROLES = ("admin", "manager", "technician")
# roles that see only the communities they are given (user_communities)
COMMUNITY_ROLES = ("manager", "technician")
ALARM_STATES = ("open", "acknowledged", "resolved")
COMMAND_STATES = ("queued", "sent", "delivered", "done", "failed", "expired")
COMMAND_FINAL = ("done", "failed", "expired")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# ------------------------------------------------------------ places


class Community(Base):
    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # billing months are calendar months in this zone
    timezone: Mapped[str] = mapped_column(String(64))
    # gateway registry document version: bumped on every change to it
    registry_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)


class Building(Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)


class Unit(Base):
    """A household (户): the unit bills are made for."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("building_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)


# ------------------------------------------------------------ things


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the bearer token: the token itself is shown once, never stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the gateway's own Ed25519 key, for fail-safe commands it signs
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # Sign1 nodes
    mac_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # Mac0 nodes
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    # always the gateway's community (kept here for scoping and listings)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    board: Mapped[str | None] = mapped_column(String(32))
    always_on: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[str | None] = mapped_column(String(100))
    # expected seconds between uplinks (the silent-device check uses it)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    # register roll-over point for billing (None: the kind's default)
    register_capacity: Mapped[float | None] = mapped_column(Float)
    # the meter's life on its unit: a replaced meter has removed_at set
    installed_at: Mapped[float] = mapped_column(Float)
    removed_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    messages_received: Mapped[int] = mapped_column(BigInteger, default=0)
    # the last cmd_id the cloud key signed for this device (ids are per authority)
    cloud_cmd_id: Mapped[int] = mapped_column(BigInteger, default=0)
    fw_version: Mapped[str | None] = mapped_column(String(32))


# ------------------------------------------------------------ data


class IngestBatch(Base):
    """One gateway batch, with the exact reply sent, so a retried batch id
    gets the same answer."""

    __tablename__ = "ingest_batches"
    __table_args__ = (UniqueConstraint("gateway_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    batch_id: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[float] = mapped_column(Float)
    items: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    reply: Mapped[bytes] = mapped_column(LargeBinary)


class Message(Base):
    """A verified uplink: the node's original COSE bytes."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("device_id", "seq"),
        Index("ix_messages_device_rx", "device_id", "rx_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    t: Mapped[int | None] = mapped_column(BigInteger)  # device time (key 2)
    rx_time: Mapped[float] = mapped_column(Float)  # gateway receive time
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batches.id"))
    cose: Mapped[bytes] = mapped_column(LargeBinary)


class Reading(Base):
    __tablename__ = "readings"
    __table_args__ = (
        Index("ix_readings_device_name_t", "device_id", "name", "t"),
        Index("ix_readings_tx_id", "tx", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(8))
    value: Mapped[float | None] = mapped_column(Float)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    value_str: Mapped[str | None] = mapped_column(String(64))
    t: Mapped[float] = mapped_column(Float)
    # "record" (bt + t), "message" (the message's key 2) or "gateway" (receive time)
    time_source: Mapped[str] = mapped_column(String(8))
    # PostgreSQL: the 64-bit id of the inserting transaction (a server default),
    # for cursors that never skip a row committed late (crud/platform.py);
    # SQLite: null (one writer: ids commit in order)
    tx: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_device_t", "device_id", "t"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    value: Mapped[Any] = mapped_column(JSON)
    t: Mapped[float] = mapped_column(Float)
    time_source: Mapped[str] = mapped_column(String(8))


class SeqGap(Base):
    """Sequence numbers of a device not (yet) received: `missing` (lost or
    still on its way) or `skipped` (never used: the node jumped to a new seq
    block when it rebooted, as its `boot` event says)."""

    __tablename__ = "seq_gaps"
    __table_args__ = (Index("ix_seq_gaps_device_first", "device_id", "first_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    # receive times of the messages on either side (for windowed completeness)
    rx_before: Mapped[float | None] = mapped_column(Float)
    rx_after: Mapped[float | None] = mapped_column(Float)
    detected_at: Mapped[float] = mapped_column(Float)


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        Index("ix_alarms_community_state_opened", "community_id", "state", "opened_at"),
        Index("ix_alarms_tx_id", "tx", "id"),
        # one alarm per device and code until it is resolved (dedup)
        Index(
            "uq_alarms_device_code_unresolved",
            "device_id",
            "code",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    code: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[float] = mapped_column(Float)
    last_at: Mapped[float] = mapped_column(Float)
    acked_at: Mapped[float | None] = mapped_column(Float)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[float | None] = mapped_column(Float)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[float | None] = mapped_column(Float)
    # the inserting transaction on PostgreSQL, as Reading.tx (FetchedValue: the
    # ORM leaves the column out of its INSERT, so the server's default applies)
    tx: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    # the condition ended (readings back within limits, the device heard
    # again); the alarm stays until resolved, by a person or by the rules
    cleared_at: Mapped[float | None] = mapped_column(Float)


class Command(Base):
    __tablename__ = "commands"
    __table_args__ = (
        UniqueConstraint("device_id", "authority", "cmd_id"),
        Index("ix_commands_device_state", "device_id", "state"),
        Index("ix_commands_community_created", "community_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    # who signed it: "cloud", or the id of the gateway for its local commands
    authority: Mapped[str] = mapped_column(String(16))
    cmd_id: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(32))
    args: Mapped[Any] = mapped_column(JSON)  # bytes shown as hex
    not_after: Mapped[int] = mapped_column(BigInteger)
    cose: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    # "user", "rollout" (fw.update of a rollout) or "local" (gateway safety rule)
    source: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(32))  # what made a gateway send it
    sent_at: Mapped[float | None] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    result_code: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    result_seq: Mapped[int | None] = mapped_column(BigInteger)
    # valve ops: when a later reading showed the valve in the commanded state
    confirmed_at: Mapped[float | None] = mapped_column(Float)


# ------------------------------------------------------------ firmware


class FirmwareRelease(Base):
    __tablename__ = "firmware_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    board: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Sign1, kid "firmware"
    bundle: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))


class Rollout(Base):
    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("firmware_releases.id"), index=True)
    percentage: Mapped[int | None] = mapped_column(Integer)
    communities: Mapped[Any] = mapped_column(JSON)  # list of ids, or null for all
    wave_size: Mapped[int] = mapped_column(Integer)
    failure_ratio: Mapped[float] = mapped_column(Float)
    # lifetime of each fw.update command it sends, seconds
    command_ttl: Mapped[int] = mapped_column(Integer)
    # failures already seen when a person resumed a halted rollout
    forgiven_failures: Mapped[int] = mapped_column(Integer, default=0)
    # "active", "halted" (by a person or by the failure threshold) or "done"
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))
    halted_at: Mapped[float | None] = mapped_column(Float)
    halt_reason: Mapped[str | None] = mapped_column(Text)


class RolloutDevice(Base):
    __tablename__ = "rollout_devices"
    __table_args__ = (UniqueConstraint("rollout_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    wave: Mapped[int] = mapped_column(Integer)
    # pending → commanded → updating → ok | failed | rolled_back
    state: Mapped[str] = mapped_column(String(16))
    command_id: Mapped[int | None] = mapped_column(ForeignKey("commands.id"))
    progress: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


# ------------------------------------------------------------ people


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh-CN")
    created_at: Mapped[float] = mapped_column(Float)


class UserCommunity(Base):
    """The communities a manager may see."""

    __tablename__ = "user_communities"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_who_at", "username", "ip", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


class AuditLog(Base):
    """Every command, alarm action, user, gateway and key change. Actors and
    targets are kept as text so entries outlive what they name."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_community_at", "community_id", "at"),
        Index("ix_audit_log_community_id", "community_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(80))  # "user:<name>", "gateway:<id>", "system"
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(80))
    community_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[Any] = mapped_column(JSON)
    # the hash chain of the entry's community (cloud/auditchain.py)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class KeyRecord(Base):
    """Public halves of the cloud's signing keys, current and retired, so
    old commands and manifests can still be checked."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(16))  # "cloud" or "firmware"
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
    retired_at: Mapped[float | None] = mapped_column(Float)


# ------------------------------------------------------------ outside systems


class ApiKey(Base):
    """A read-only key of an outside system (a city platform, a utility):
    it reads the readings and alarms of its communities, at a rate limit.
    Only the SHA-256 of the key is kept; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown, so people tell keys apart
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


class ApiKeyCommunity(Base):
    __tablename__ = "api_key_communities"

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )


class ApiKeyUsage(Base):
    """Requests of a key per minute: the rate limit, shared by every worker."""

    __tablename__ = "api_key_usage"

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time // 60
    count: Mapped[int] = mapped_column(Integer)


# ------------------------------------------------------------ community rules


class RuleVersion(Base):
    """One version of a community's rules and thresholds (rule_defaults.py
    shape). Never changed: every change is a new row; the current rules are
    the highest version, and a community without rows runs the defaults."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("community_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


# ------------------------------------------------------------ tariffs


class Tariff(Base):
    """A community's price of one utility from `effective_from` on (the
    document pricing.py reads: fixed monthly charge, tiers, tier period;
    money as decimal strings). Never changed: a new price is a new row."""

    __tablename__ = "tariffs"
    __table_args__ = (UniqueConstraint("community_id", "utility", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    utility: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, sorts as a date
    name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(Text)
    document: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))


# ------------------------------------------------------------ notifications

CHANNEL_KINDS = ("webhook", "email", "wecom", "dingtalk", "sms")
# who a channel reaches: "all" hears every alarm event of its community (a
# group robot, an outside system); the others are people, notified when an
# escalation step names their audience ("duty": when the roster has them on)
AUDIENCES = ("all", "duty", "manager", "emergency")
NOTIFICATION_STATES = ("pending", "sending", "sent", "dead")


class Channel(Base):
    """A destination of a community's notifications (notifications/)."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))
    # webhook: the HMAC key of X-Kapok-Signature; dingtalk: the robot's
    # signing secret. Never returned by the API once stored.
    secret: Mapped[str | None] = mapped_column(String(200))
    lang: Mapped[str] = mapped_column(String(8), default="zh-CN")
    name: Mapped[str | None] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))

    @property
    def has_secret(self) -> bool:
        """What the API shows of the secret."""
        return bool(self.secret)


class DutyShift(Base):
    """Who is on duty when: a weekly shift (`weekdays`, 0 = Monday) or, for
    one date (`day`, YYYY-MM-DD), an override; a day with overrides follows
    them instead of the weekly pattern (`off`: nobody from that channel).
    Times are HH:MM in the cloud's time zone; an end before the start runs
    past midnight."""

    __tablename__ = "duty_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    weekdays: Mapped[Any | None] = mapped_column(JSON)  # [0..6]; null for an override
    day: Mapped[str | None] = mapped_column(String(10))
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    off: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))


class Notification(Base):
    """One message to one channel: the durable outbox. Queued in the
    transaction that opened, escalated or closed the alarm; claimed by one
    sender at a time (FOR UPDATE SKIP LOCKED, a lease); unique per channel,
    alarm, event and escalation step, so no step is ever queued twice."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("channel_id", "alarm_id", "event", "step"),
        Index("ix_notifications_state_next_at", "state", "next_at"),
        Index("ix_notifications_community_id_id", "community_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=0)
    # the rendered message (adapters.Message fields), fixed when queued
    message: Mapped[Any] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)
    lease_until: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)


# ------------------------------------------------------------ work orders

WORK_ORDER_STATES = ("open", "assigned", "in_progress", "done", "cancelled")
WORK_ORDER_FINAL = ("done", "cancelled")


class WorkOrder(Base):
    """A job for a technician (工单): from an alarm or by hand, about a unit,
    a device or the community itself. open → assigned → in_progress → done
    or cancelled; one unfinished order per alarm."""

    __tablename__ = "work_orders"
    __table_args__ = (
        Index("ix_work_orders_community_state", "community_id", "state"),
        Index(
            "uq_work_orders_alarm_unfinished",
            "alarm_id",
            unique=True,
            sqlite_where=text("state NOT IN ('done', 'cancelled')"),
            postgresql_where=text("state NOT IN ('done', 'cancelled')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    due_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float)
    # why it was cancelled, or why its alarm stays open although it is done
    outcome: Mapped[str | None] = mapped_column(Text)


class WorkOrderEvent(Base):
    """The order's timeline: its state changes, notes and photos, in order.
    A photo's bytes are loaded only when asked for (deferred)."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    by: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # a state, "note" or "photo"
    text: Mapped[str | None] = mapped_column(Text)
    photo_type: Mapped[str | None] = mapped_column(String(32))
    photo_size: Mapped[int | None] = mapped_column(Integer)
    photo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
