"""Request and response bodies of the JSON API (Create / Update / Public).

Times are Unix seconds (numbers), as on the wire; bytes are lowercase hex.
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator
from pydantic_core import PydanticCustomError

from .models import COMMAND_STATES, DEVICE_KINDS

DeviceKind = Literal["gas-meter", "water-meter", "electricity-meter", "water-quality", "hub"]
assert set(DeviceKind.__args__) == set(DEVICE_KINDS)
Role = Literal["admin", "manager", "technician"]
Locale = Literal["zh-CN", "en"]


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _hex32(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} must be hex") from None
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes (64 hex digits)")
    return value


# ------------------------------------------------------------ auth & users


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: float


class UserCreate(BaseModel):
    username: str
    password: str
    role: Role = "manager"
    communities: list[int] = []
    locale: Locale = "zh-CN"


class UserUpdate(BaseModel):
    password: str | None = None
    role: Role | None = None
    communities: list[int] | None = None
    active: bool | None = None
    locale: Locale | None = None


class PasswordChange(BaseModel):
    current_password: str
    new_password: str


class UserPublic(Public):
    id: int
    username: str
    role: Role
    active: bool
    locale: str
    communities: list[int]
    created_at: float


# ------------------------------------------------------------ places


class CommunityCreate(BaseModel):
    name: str
    timezone: str | None = None


class CommunityUpdate(BaseModel):
    name: str | None = None
    timezone: str | None = None


class CommunityPublic(Public):
    id: int
    name: str
    timezone: str
    registry_version: int
    created_at: float


class CreatedId(BaseModel):
    id: int | str


class CommunitySummary(BaseModel):
    id: int
    name: str
    buildings: int
    units: int
    devices: int
    gateways: int
    alarms_open: int
    alarms_acknowledged: int
    devices_silent: int
    completeness: float | None = Field(
        description="received / expected messages of the community's devices over `window`"
    )
    window: list[float]


class BuildingCreate(BaseModel):
    community: int
    name: str


class NameUpdate(BaseModel):
    name: str


class BuildingPublic(Public):
    id: int
    community_id: int
    name: str
    created_at: float


class UnitCreate(BaseModel):
    building: int
    name: str


class UnitPublic(Public):
    id: int
    building_id: int
    name: str
    created_at: float


# ------------------------------------------------------------ gateways


class GatewayCreate(BaseModel):
    name: str
    community: int
    id: str | None = Field(default=None, description="chosen id; generated when absent")


class GatewayCreated(BaseModel):
    id: str
    token: str = Field(description="the bearer token: shown this once, stored only hashed")


class GatewayUpdate(BaseModel):
    name: str


class GatewayPublic(Public):
    id: str
    community_id: int
    name: str
    public_key: str | None
    created_at: float
    revoked_at: float | None
    last_seen: float | None

    @field_validator("public_key", mode="before")
    @classmethod
    def _hex(cls, v):
        return v.hex() if isinstance(v, bytes) else v


class GatewayKey(BaseModel):
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _check(cls, v):
        return _hex32(v, "public_key")


# ------------------------------------------------------------ devices


class DeviceCreate(BaseModel):
    id: str
    kind: DeviceKind
    gateway: str
    public_key: str | None = Field(default=None, description="hex Ed25519 key (COSE_Sign1)")
    mac_key: str | None = Field(default=None, description="hex 32-byte HMAC key (COSE_Mac0)")
    unit: int | None = None
    board: str | None = Field(default=None, max_length=32)
    always_on: bool | None = None
    address: str | None = Field(default=None, max_length=100)
    interval: int | None = Field(default=None, ge=1, description="expected seconds between uplinks")
    register_capacity: float | None = Field(default=None, gt=0)
    installed_at: float | None = None

    @field_validator("public_key")
    @classmethod
    def _pk(cls, v):
        return _hex32(v, "public_key")

    @field_validator("mac_key")
    @classmethod
    def _mk(cls, v):
        return _hex32(v, "mac_key")


class DeviceUpdate(BaseModel):
    gateway: str | None = None
    unit: int | None = None
    public_key: str | None = None
    mac_key: str | None = None
    board: str | None = Field(default=None, max_length=32)
    always_on: bool | None = None
    address: str | None = Field(default=None, max_length=100)
    interval: int | None = Field(default=None, ge=1)
    register_capacity: float | None = Field(default=None, gt=0)
    installed_at: float | None = None
    removed_at: float | None = None

    @field_validator("public_key")
    @classmethod
    def _pk(cls, v):
        return _hex32(v, "public_key")

    @field_validator("mac_key")
    @classmethod
    def _mk(cls, v):
        return _hex32(v, "mac_key")


class DevicePublic(Public):
    id: str
    kind: DeviceKind
    gateway: str = Field(validation_alias="gateway_id")
    community: int = Field(validation_alias="community_id")
    unit: int | None = Field(validation_alias="unit_id")
    public_key: str | None
    has_mac_key: bool = False
    board: str | None
    always_on: bool
    address: str | None
    interval: int = Field(validation_alias="interval_seconds")
    register_capacity: float | None
    installed_at: float
    removed_at: float | None
    created_at: float
    last_seen: float | None
    last_seq: int | None
    messages_received: int
    fw_version: str | None

    @field_validator("public_key", mode="before")
    @classmethod
    def _hex(cls, v):
        return v.hex() if isinstance(v, bytes) else v


class ReadingPublic(BaseModel):
    t: float
    n: str
    u: str | None
    v: float | bool | str | None = Field(
        description="the value: a number, or a boolean for vb readings (valve), "
        "or text for vs readings (fw)"
    )
    seq: int
    time_source: Literal["record", "message", "gateway"]


class EventPublic(Public):
    t: float
    code: str
    value: Any
    seq: int
    time_source: str


class GapPublic(Public):
    first_seq: int
    last_seq: int
    kind: Literal["missing", "skipped"]
    rx_before: float | None
    rx_after: float | None
    detected_at: float


class Completeness(BaseModel):
    device: str
    to: float
    received: int
    missing: int
    skipped: int
    expected: int
    completeness: float | None
    expected_by_interval: int
    coverage: float | None
    model_config = ConfigDict(populate_by_name=True)
    from_: float = Field(alias="from")


class MessagePublic(BaseModel):
    device: str
    seq: int
    t: int | None
    rx_time: float
    gateway: str
    cose: str


# ------------------------------------------------------------ commands


class CommandCreate(BaseModel):
    op: str
    args: dict[str, Any] = {}
    ttl: int | None = Field(default=None, ge=60, description="seconds until it expires")


class CommandPublic(Public):
    id: int
    device: str = Field(validation_alias="device_id")
    authority: str
    cmd_id: int
    op: str
    args: dict[str, Any]
    not_after: int
    state: Literal[COMMAND_STATES]  # type: ignore[valid-type]
    source: str
    created_at: float
    created_by: str | None
    event: str | None
    sent_at: float | None
    delivered_at: float | None
    finished_at: float | None
    result: str | None
    result_code: int | None
    detail: str | None
    confirmed_at: float | None
    cose: str

    @field_validator("cose", mode="before")
    @classmethod
    def _hex(cls, v):
        return v.hex() if isinstance(v, bytes) else v


class GatewayCommand(BaseModel):
    id: int
    device: str
    cmd_id: int
    op: str
    not_after: int
    cose: str


class DeliveryReport(BaseModel):
    state: Literal["sent", "delivered", "failed"]
    detail: str | None = None
    at: float | None = None


class LocalCommand(BaseModel):
    device: str
    op: str
    cmd_id: int = Field(ge=0)
    event: str | None = None
    at: float
    cose: str

    @field_validator("cose")
    @classmethod
    def _hex(cls, v):
        try:
            bytes.fromhex(v)
        except ValueError:
            raise ValueError("cose must be hex") from None
        return v


# ------------------------------------------------------------ alarms


class AlarmAction(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class AlarmPublic(Public):
    id: int
    device: str = Field(validation_alias="device_id")
    community: int = Field(validation_alias="community_id")
    code: str
    severity: str
    state: Literal["open", "acknowledged", "resolved"]
    value: Any
    count: int
    opened_at: float
    last_at: float
    acked_at: float | None
    acked_by: str | None
    resolved_at: float | None
    resolved_by: str | None
    note: str | None
    escalation_level: int
    escalated_at: float | None
    # the condition ended (readings back within limits, device heard again)
    cleared_at: float | None = None

    @computed_field
    @property
    def cleared(self) -> bool:
        return self.cleared_at is not None


# ------------------------------------------------------------ firmware


class ReleasePublic(Public):
    id: int
    version: str
    board: str
    app: str
    size: int
    sha256: str
    manifest: str
    created_at: float
    created_by: str | None

    @field_validator("sha256", "manifest", mode="before")
    @classmethod
    def _hex(cls, v):
        return v.hex() if isinstance(v, bytes) else v


class RolloutCreate(BaseModel):
    release: int
    percentage: int | None = Field(default=None, ge=1, le=100)
    communities: list[int] | None = None
    wave_size: int | None = Field(default=None, ge=1)
    failure_ratio: float | None = Field(default=None, gt=0, le=1)
    ttl: int | None = Field(default=None, ge=60)


class RolloutDevicePublic(Public):
    device: str = Field(validation_alias="device_id")
    community: int = Field(validation_alias="community_id")
    wave: int
    state: str
    command: int | None = Field(validation_alias="command_id")
    progress: int | None
    detail: str | None
    updated_at: float


class RolloutPublic(Public):
    id: int
    release: int = Field(validation_alias="release_id")
    percentage: int | None
    communities: list[int] | None
    wave_size: int
    failure_ratio: float
    state: Literal["active", "halted", "done"]
    created_at: float
    created_by: str | None
    halted_at: float | None
    halt_reason: str | None
    counts: dict[str, int] = {}
    devices: list[RolloutDevicePublic] = []


class HaltRequest(BaseModel):
    reason: str = "halted by hand"


# ------------------------------------------------------------ keys & audit


class KeyPublic(Public):
    name: str
    public_key: str
    created_at: float
    retired_at: float | None

    @field_validator("public_key", mode="before")
    @classmethod
    def _hex(cls, v):
        return v.hex() if isinstance(v, bytes) else v


class AuditPublic(Public):
    id: int
    at: float
    actor: str
    action: str
    target: str
    community: int | None = Field(validation_alias="community_id")
    detail: dict[str, Any]


# ------------------------------------------------------------ outside systems


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["城市运行管理平台"])
    communities: list[int] = Field(min_length=1, examples=[[1, 2]])
    rate_per_minute: int = Field(default=120, ge=1, le=6000)


class ApiKeyPublic(Public):
    id: int
    name: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    communities: list[int]
    rate_per_minute: int
    created_at: float
    created_by: str
    revoked_at: float | None
    last_used_at: float | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the key itself: shown this once, only its hash is kept")


class PlatformReading(BaseModel):
    id: int
    device: str
    community: int
    unit: int | None
    seq: int
    t: float
    n: str
    u: str | None
    v: float | bool | str | None
    time_source: Literal["record", "message", "gateway"]
    cose: str | None = Field(
        default=None,
        description="with cose=true: the node's original signed message (hex), which "
        "`kapok verify` checks against the device's public key",
    )


class ReadingPage(BaseModel):
    items: list[PlatformReading]
    cursor: str = Field(description="pass as `cursor` for the next page; the same when empty")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": 1841,
                            "device": "gm-0001a3",
                            "community": 1,
                            "unit": 12,
                            "seq": 5021,
                            "t": 1767225600.0,
                            "n": "vol",
                            "u": "m3",
                            "v": 123.456,
                            "time_source": "record",
                        }
                    ],
                    "cursor": "MTIzNDU6MTg0MQ",
                }
            ]
        }
    )


class AlarmPage(BaseModel):
    items: list[AlarmPublic]
    cursor: str


# ------------------------------------------------------------ community rules

Bound = float | None


def _rule_error(kind: str, message: str, /, **context) -> PydanticCustomError:
    """A rules validation error: the API shows `message`; the dashboard
    words it in the viewer's language by its type `rules.<kind>`."""
    return PydanticCustomError(f"rules.{kind}", message, context)


class FailsafeRule(BaseModel):
    """A gateway's local rule: this event closes a valve / sounds a siren
    on the sender (`self`) or on devices of a kind in its unit."""

    model_config = ConfigDict(extra="forbid")

    event: str
    op: str
    target: str = Field(pattern=r"^(self|unit:[a-z0-9-]{1,32})$")

    @field_validator("event")
    @classmethod
    def _event(cls, v):
        from kapok.protocols import messages

        if v not in messages.EVENTS:
            raise _rule_error("unknown_event", "unknown event code '{code}'", code=v)
        return v

    @field_validator("op")
    @classmethod
    def _op(cls, v):
        from kapok.protocols import messages

        if v not in messages.FAILSAFE_OPS:
            raise _rule_error(
                "not_failsafe",
                "unknown op '{op}': a gateway rule may only use the fail-safe ops {ops}",
                op=v,
                ops=" and ".join(messages.FAILSAFE_OPS),
            )
        return v


def _check_range(name: str, pair: list[Bound]) -> list[Bound]:
    low, high = pair
    if low is None and high is None:
        raise _rule_error("no_bound", "{name}: give at least one bound", name=name)
    if low is not None and high is not None and low > high:
        raise _rule_error(
            "low_above_high",
            "{name}: low {low} is above high {high}",
            name=name,
            low=low,
            high=high,
        )
    return [low, high]


class QualityLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ph: list[Bound] | None = Field(default=None, min_length=2, max_length=2)
    turb: list[Bound] | None = Field(default=None, min_length=2, max_length=2)
    cl: list[Bound] | None = Field(default=None, min_length=2, max_length=2)

    @field_validator("ph", "turb", "cl")
    @classmethod
    def _range(cls, v, info):
        return None if v is None else _check_range(info.field_name, list(v))


_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
SEVERITIES = ("critical", "major", "minor")


class EscalationStep(BaseModel):
    """After this many minutes unacknowledged, notify this audience."""

    model_config = ConfigDict(extra="forbid")

    after_minutes: float = Field(ge=0, le=60 * 24 * 7)
    notify: Literal["duty", "manager", "emergency", "all"]


class RulesUpdate(BaseModel):
    """PUT body: the parts given replace the current ones, the others stay."""

    model_config = ConfigDict(extra="forbid")

    quality: QualityLimits | None = None
    battery_low_v: float | None = Field(default=None, gt=0, le=24)
    continuous_flow_h: dict[str, float] | None = None
    silent_minutes: dict[str, float | None] | None = None
    failsafe: list[FailsafeRule] | None = Field(default=None, max_length=64)
    auto_resolve_minutes: dict[str, float | None] | None = None
    escalation: dict[str, list[EscalationStep] | None] | None = None
    # [from, to] in HH:MM; [] for none
    quiet_hours: list[str] | None = Field(default=None, max_length=2)
    note: str | None = Field(default=None, max_length=500)

    @field_validator("escalation")
    @classmethod
    def _escalation(cls, v):
        from .crud.alarms import SEVERITY

        for key, steps in (v or {}).items():
            if key not in SEVERITY and key not in SEVERITIES:
                raise _rule_error("unknown_alarm", "unknown alarm kind '{code}'", code=key)
            if steps is None:
                continue  # back to the default
            if not steps:
                raise _rule_error("no_steps", "{code}: give at least one step", code=key)
            times = [s.after_minutes for s in steps]
            if times != sorted(times) or len(set(times)) != len(times):
                raise _rule_error(
                    "steps_order", "{code}: steps must come later one after another", code=key
                )
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v):
        if v is not None and len(v) == 1:
            raise _rule_error("hhmm_pair", "quiet hours: give [from, to], or [] for none")
        for hhmm in v or ():
            if not _HHMM.fullmatch(hhmm):
                raise _rule_error("hhmm", "'{value}' is not a time HH:MM", value=hhmm)
        return v

    @field_validator("continuous_flow_h")
    @classmethod
    def _flow(cls, v):
        from .rule_defaults import FLOW_KINDS

        for kind, hours in (v or {}).items():
            if kind not in FLOW_KINDS:
                raise _rule_error(
                    "unknown_kind",
                    "unknown meter kind '{kind}' (one of {kinds})",
                    kind=kind,
                    kinds=", ".join(FLOW_KINDS),
                )
            if not 0 <= hours <= 24 * 7:
                raise _rule_error("flow_range", "{kind}: hours must be 0 (off) to 168", kind=kind)
        return v

    @field_validator("silent_minutes")
    @classmethod
    def _silent(cls, v):
        for kind, minutes in (v or {}).items():
            if kind not in DEVICE_KINDS:
                raise _rule_error(
                    "unknown_kind", "unknown device kind '{kind}'", kind=kind, kinds=""
                )
            if minutes is not None and not 1 <= minutes <= 60 * 24 * 30:
                raise _rule_error(
                    "silent_range",
                    "{kind}: minutes must be 1 to 43200, or null for the default",
                    kind=kind,
                )
        return v

    @field_validator("auto_resolve_minutes")
    @classmethod
    def _auto(cls, v):
        from .crud.alarms import SEVERITY
        from .rule_defaults import LIFE_SAFETY

        for code, minutes in (v or {}).items():
            if code not in SEVERITY:
                raise _rule_error("unknown_alarm", "unknown alarm kind '{code}'", code=code)
            if code in LIFE_SAFETY and minutes is not None:
                raise _rule_error(
                    "life_safety", "{code} is a life-safety alarm: a person resolves it", code=code
                )
            if minutes is not None and not 0 <= minutes <= 60 * 24 * 30:
                raise _rule_error(
                    "auto_range", "{code}: minutes must be 0 to 43200, or null for never", code=code
                )
        return v


class ThresholdDelivery(BaseModel):
    device: str
    kind: str
    command: int | None
    state: str | None
    args: dict[str, Any] | None
    detail: str | None
    at: float | None


class RulesPublic(BaseModel):
    community: int
    version: int  # 0: never changed, the defaults
    rules: dict[str, Any]
    defaults: dict[str, Any]
    created_at: float | None
    created_by: str | None
    note: str | None
    delivery: list[ThresholdDelivery] = []


class RuleVersionPublic(Public):
    version: int
    rules: dict[str, Any]
    created_at: float
    created_by: str | None
    note: str | None
    changes: list[dict[str, Any]] = []


# ------------------------------------------------------------ tariffs


class TariffCreate(BaseModel):
    """A price from `effective_from` on. Money and volumes as decimal
    strings (never floats); see pricing.py for the document's rules."""

    model_config = ConfigDict(extra="forbid")

    community: int
    utility: Literal["gas", "water", "electricity"]
    effective_from: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    name: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=2000)
    fixed_monthly: Any = "0"
    period: str = "monthly"
    tiers: list[Any]
