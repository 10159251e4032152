"""Dependencies of the routes: the session, the clock, who is calling, and
THE one place that decides what a caller may see (`Scope`).

A manager sees only the communities they are scoped to; anything else is
answered exactly like something that does not exist (404), on every route,
so ids of other communities reveal nothing. Routes load every object named
by a path parameter, a query parameter or a body field through `Scope`.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.config import Settings
from ..core.db import session_scope
from ..crud import api_keys as api_keys_crud
from ..crud import gateways as gateways_crud
from ..crud import users as users_crud
from ..errors import Forbidden, NotFound, Unauthorized
from ..keys import KeyStore
from ..models import (
    Alarm,
    Building,
    Channel,
    Command,
    Community,
    Device,
    DutyShift,
    Gateway,
    Notification,
    Rollout,
    RolloutDevice,
    Unit,
    User,
    WorkOrder,
)


def get_session(request: Request) -> Iterator[Session]:
    # committed when the route function returns, before the response is
    # sent: nothing is acknowledged before it is durable
    with session_scope(request.app.state.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_keys(request: Request) -> KeyStore:
    return request.app.state.keys


KeysDep = Annotated[KeyStore, Depends(get_keys)]


def get_now(request: Request) -> float:
    """The current Unix time (the app's clock, which tests may set)."""
    return request.app.state.clock()


NowDep = Annotated[float, Depends(get_now)]

user_token = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
gateway_token = HTTPBearer(
    scheme_name="GatewayToken",
    description="the token `POST /api/v1/gateways` returned",
    auto_error=False,
)


def get_current_user(
    session: SessionDep, now: NowDep, token: Annotated[str | None, Depends(user_token)]
) -> User:
    if not token:
        raise Unauthorized("not authenticated")
    user = users_crud.user_by_token(session, token=token, now=now)
    if user is None:
        raise Unauthorized("invalid or expired token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_admin(user: CurrentUser) -> User:
    if user.role != "admin":
        raise Forbidden("admins only")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


def authenticate_gateway(session: Session, token: str | None, now: float) -> Gateway:
    if not token:
        raise Unauthorized("gateway token required")
    gateway = gateways_crud.gateway_by_token(session, token=token)
    if gateway is None:
        raise Unauthorized("unknown or revoked gateway token")
    if gateway.last_seen is None or now - gateway.last_seen > 60:
        gateway.last_seen = now
    return gateway


def get_current_gateway(
    session: SessionDep,
    now: NowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(gateway_token)],
) -> Gateway:
    return authenticate_gateway(session, credentials.credentials if credentials else None, now)


CurrentGateway = Annotated[Gateway, Depends(get_current_gateway)]


@dataclass(frozen=True)
class Scope:
    """What the caller may see: `communities` None means everything
    (admins). Every loader raises NotFound for what is out of scope. `user`
    is None for an outside system's API key (read-only routes of its
    communities: `get_api_key_scope`)."""

    user: User | None
    session: Session
    communities: frozenset[int] | None

    @property
    def is_admin(self) -> bool:
        return self.communities is None

    @property
    def technician(self) -> User | None:
        """A technician sees nothing of its communities but the work orders
        given to it (its `communities` are empty: every other loader is 404)."""
        return self.user if self.user is not None and self.user.role == "technician" else None

    def allows(self, community_id: int | None) -> bool:
        return self.communities is None or community_id in self.communities

    def _check(self, obj, community_id: int | None, what: str):
        if obj is None or not self.allows(community_id):
            raise NotFound(f"{what} not found")
        return obj

    def community(self, community_id: int) -> Community:
        c = self.session.get(Community, community_id)
        return self._check(c, community_id, f"community {community_id}")

    def building(self, building_id: int) -> Building:
        b = self.session.get(Building, building_id)
        return self._check(b, b and b.community_id, f"building {building_id}")

    def unit(self, unit_id: int) -> Unit:
        u = self.session.get(Unit, unit_id)
        b = u and self.session.get(Building, u.building_id)
        return self._check(u, b and b.community_id, f"unit {unit_id}")

    def gateway(self, gateway_id: str) -> Gateway:
        g = self.session.get(Gateway, gateway_id)
        return self._check(g, g and g.community_id, f"gateway {gateway_id}")

    def device(self, device_id: str) -> Device:
        d = self.session.get(Device, device_id)
        return self._check(d, d and d.community_id, f"device {device_id}")

    def alarm(self, alarm_id: int) -> Alarm:
        a = self.session.get(Alarm, alarm_id)
        return self._check(a, a and a.community_id, f"alarm {alarm_id}")

    def command(self, command_id: int) -> Command:
        c = self.session.get(Command, command_id)
        return self._check(c, c and c.community_id, f"command {command_id}")

    def channel(self, channel_id: int) -> Channel:
        c = self.session.get(Channel, channel_id)
        return self._check(c, c and c.community_id, f"channel {channel_id}")

    def shift(self, shift_id: int) -> DutyShift:
        s = self.session.get(DutyShift, shift_id)
        return self._check(s, s and s.community_id, f"shift {shift_id}")

    def notification(self, notification_id: int) -> Notification:
        n = self.session.get(Notification, notification_id)
        return self._check(n, n and n.community_id, f"notification {notification_id}")

    def work_order(self, order_id: int) -> WorkOrder:
        w = self.session.get(WorkOrder, order_id)
        if w is not None and self.technician is not None:
            if w.assignee_id != self.technician.id:
                w = None
        elif w is not None and not self.allows(w.community_id):
            w = None
        if w is None:
            raise NotFound(f"work order {order_id} not found")
        return w

    def rollout(self, rollout_id: int) -> Rollout:
        """Admins see every rollout; a manager those reaching their communities."""
        r = self.session.get(Rollout, rollout_id)
        if r is not None and not self.is_admin:
            reaches = self.session.scalar(
                select(RolloutDevice.id)
                .where(
                    RolloutDevice.rollout_id == r.id,
                    RolloutDevice.community_id.in_(self.communities),
                )
                .limit(1)
            )
            if reaches is None:
                r = None
        if r is None:
            raise NotFound(f"rollout {rollout_id} not found")
        return r

    def community_filter(self, community_id: int | None) -> frozenset[int] | None:
        """The communities a listing covers: the one asked for (checked), or
        everything in scope."""
        if community_id is not None:
            self.community(community_id)
            return frozenset([community_id])
        return self.communities


def get_scope(user: CurrentUser, session: SessionDep) -> Scope:
    if user.role == "admin":
        return Scope(user, session, None)
    if user.role == "technician":
        return Scope(user, session, frozenset())
    return Scope(user, session, frozenset(users_crud.communities_of(session, user)))


ScopeDep = Annotated[Scope, Depends(get_scope)]

api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="a read-only key from `POST /api/v1/api-keys` (kapok_ak_...)",
    auto_error=False,
)


def get_api_key_scope(
    request: Request,
    session: SessionDep,
    now: NowDep,
    key: Annotated[str | None, Depends(api_key_header)],
) -> Scope:
    """The communities of a valid, unrevoked API key; each request counted
    against its rate in a transaction of its own (the count must hold however
    the request ends)."""
    if not key:
        raise Unauthorized("X-API-Key required")
    # The key's own transaction comes first: the request's session has not
    # begun yet, so on SQLite (BEGIN IMMEDIATE) the two never wait on each other.
    with session_scope(request.app.state.sessions) as counting:
        found = api_keys_crud.key_by_token(counting, token=key)
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        communities = frozenset(api_keys_crud.communities_of(counting, found))
        api_keys_crud.count_request(counting, key=found, now=now)
    return Scope(None, session, communities)


ApiKeyScopeDep = Annotated[Scope, Depends(get_api_key_scope)]


# Objects named by the `{id}` path parameter, loaded through the scope. As
# dependencies they run before the body is validated, so an id out of scope
# is a 404 whatever the body says.


def _community(id: int, scope: ScopeDep) -> Community:
    return scope.community(id)


def _building(id: int, scope: ScopeDep) -> Building:
    return scope.building(id)


def _unit(id: int, scope: ScopeDep) -> Unit:
    return scope.unit(id)


def _gateway(id: str, scope: ScopeDep) -> Gateway:
    return scope.gateway(id)


def _device(id: str, scope: ScopeDep) -> Device:
    return scope.device(id)


def _alarm(id: int, scope: ScopeDep) -> Alarm:
    return scope.alarm(id)


def _command(id: int, scope: ScopeDep) -> Command:
    return scope.command(id)


def _rollout(id: int, scope: ScopeDep) -> Rollout:
    return scope.rollout(id)


ScopedCommunity = Annotated[Community, Depends(_community)]
ScopedBuilding = Annotated[Building, Depends(_building)]
ScopedUnit = Annotated[Unit, Depends(_unit)]
ScopedGateway = Annotated[Gateway, Depends(_gateway)]
ScopedDevice = Annotated[Device, Depends(_device)]
ScopedAlarm = Annotated[Alarm, Depends(_alarm)]
ScopedCommand = Annotated[Command, Depends(_command)]
ScopedRollout = Annotated[Rollout, Depends(_rollout)]


# Who may change a community's rules: its managers (Scope checks which
# community) and admins; any other role reads them only.
RULES_ROLES = ("admin", "operator", "manager")


def require_rules_editor(user: CurrentUser) -> User:
    if user.role not in RULES_ROLES:
        raise Forbidden("only managers and admins change rules")
    return user


RulesEditor = Annotated[User, Depends(require_rules_editor)]


def _channel(id: int, scope: ScopeDep) -> Channel:
    return scope.channel(id)


def _shift(id: int, scope: ScopeDep) -> DutyShift:
    return scope.shift(id)


def _notification(id: int, scope: ScopeDep) -> Notification:
    return scope.notification(id)


ScopedChannel = Annotated[Channel, Depends(_channel)]
ScopedShift = Annotated[DutyShift, Depends(_shift)]
ScopedNotification = Annotated[Notification, Depends(_notification)]

# Who may manage a community's notification channels and its duty roster:
# the same people as its rules.
OPERATIONS_ROLES = RULES_ROLES


def require_operations_editor(user: CurrentUser) -> User:
    if user.role not in OPERATIONS_ROLES:
        raise Forbidden("only managers and admins change channels and rosters")
    return user


OperationsEditor = Annotated[User, Depends(require_operations_editor)]


def _work_order(id: int, scope: ScopeDep) -> WorkOrder:
    return scope.work_order(id)


ScopedWorkOrder = Annotated[WorkOrder, Depends(_work_order)]

# Who makes, assigns and cancels work orders: the community's managers and
# admins. A technician (who loads only its own orders) starts them, adds
# notes and photos, and marks them done.
DISPATCH_ROLES = RULES_ROLES


def require_dispatcher(user: CurrentUser) -> User:
    if user.role not in DISPATCH_ROLES:
        raise Forbidden("only managers and admins make, assign and cancel work orders")
    return user


Dispatcher = Annotated[User, Depends(require_dispatcher)]
