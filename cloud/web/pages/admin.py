"""Administration: gateways (register: the token is shown once; rotate;
revoke), device registration (keys, unit, removal) and users and roles.

Gateways and devices are managed by managers within their communities as
the API allows; users are for admins only."""

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Response
from sqlalchemy import select

from ...api.routes import devices as devices_api
from ...api.routes import gateways as gateways_api
from ...api.routes import users as users_api
from ...crud import devices as devices_crud
from ...crud import gateways as gateways_crud
from ...errors import NotFound
from ...models import DEVICE_KINDS, Building, Gateway, Unit, User
from ...schemas import DeviceCreate, DeviceUpdate, GatewayCreate, Role, UserCreate, UserUpdate
from .. import queries
from ..rendering import PageRoute, redirect, render
from ..session import Page, PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)

FormText = Annotated[str, Form()]


def _blank(value: str) -> str | None:
    value = value.strip()
    return value or None


# ------------------------------------------------------------ gateways


@router.get("/admin/gateways")
def gateways_page(page: PageDep, community: int | None = None) -> Response:
    gateways = gateways_crud.gateways_of(
        page.session, community_ids=page.scope.community_filter(community)
    )
    communities = queries.communities(page.session, scope=page.scope)
    return render(
        page,
        "gateways.html",
        section="gateways",
        gateways=gateways,
        communities=communities,
        names={c.id: c.name for c in communities},
        community=community,
    )


def _token_page(page: Page, gateway: Gateway, token: str, *, created: bool) -> Response:
    response = render(
        page,
        "gateway_token.html",
        section="gateways",
        status=201 if created else 200,
        gateway=gateway,
        token=token,
        created=created,
        cloud_url=str(page.request.base_url).rstrip("/"),
    )
    return response


@router.post("/admin/gateways")
def create_gateway(
    page: PostedPageDep,
    name: FormText,
    community: Annotated[int, Form()],
    gateway_id: FormText = "",
) -> Response:
    created = gateways_api.create_gateway(
        body=GatewayCreate(name=name, community=community, id=_blank(gateway_id)),
        scope=page.scope,
        session=page.session,
        now=page.now,
        me=page.user,
    )
    return _token_page(page, page.scope.gateway(created.id), created.token, created=True)


@router.post("/admin/gateways/{gateway_id}/token")
def rotate_gateway_token(page: PostedPageDep, gateway_id: str) -> Response:
    gateway = page.scope.gateway(gateway_id)
    rotated = gateways_api.rotate_gateway_token(
        gateway=gateway, session=page.session, now=page.now, me=page.user
    )
    return _token_page(page, gateway, rotated.token, created=False)


@router.post("/admin/gateways/{gateway_id}/revoke")
def revoke_gateway(page: PostedPageDep, gateway_id: str) -> Response:
    gateways_api.revoke_gateway(
        gateway=page.scope.gateway(gateway_id), session=page.session, now=page.now, me=page.user
    )
    return redirect("/admin/gateways")


# ------------------------------------------------------------ devices


def _units(page: Page) -> list[tuple[Unit, Building]]:
    stmt = (
        select(Unit, Building)
        .join(Building, Building.id == Unit.building_id)
        .order_by(Building.community_id, Building.name, Unit.name)
    )
    if page.scope.communities is not None:
        stmt = stmt.where(Building.community_id.in_(page.scope.communities))
    return list(page.session.execute(stmt).all())


@router.get("/admin/devices")
def devices_page(
    page: PageDep, community: int | None = None, gateway: str | None = None
) -> Response:
    if gateway is not None:
        page.scope.gateway(gateway)
    devices = devices_crud.list_devices(
        page.session,
        community_ids=page.scope.community_filter(community),
        gateway_id=gateway,
    )
    communities = queries.communities(page.session, scope=page.scope)
    return render(
        page,
        "devices.html",
        section="devices",
        devices=devices,
        places=queries.places_of_devices(page.session, device_ids=[d.id for d in devices]),
        communities=communities,
        names={c.id: c.name for c in communities},
        gateways=gateways_crud.gateways_of(page.session, community_ids=page.scope.communities),
        units=_units(page),
        kinds=DEVICE_KINDS,
        community=community,
        gateway=gateway,
    )


KeyType = Literal["public_key", "mac_key"]


@router.post("/admin/devices")
def register_device(
    page: PostedPageDep,
    device_id: FormText,
    kind: Annotated[str, Form()],
    gateway: FormText,
    key: FormText,
    key_type: Annotated[KeyType, Form()] = "public_key",
    unit: Annotated[int | None, Form()] = None,
    board: FormText = "",
    interval: Annotated[int | None, Form()] = None,
) -> Response:
    body = DeviceCreate(
        id=device_id.strip(),
        kind=kind,
        gateway=gateway,
        unit=unit,
        board=_blank(board),
        interval=interval,
        **{key_type: key.strip()},
    )
    device = devices_api.register_device(
        body=body,
        scope=page.scope,
        session=page.session,
        now=page.now,
        me=page.user,
        keys=page.keys,
        settings=page.settings,
    )
    return redirect(f"/admin/devices/{device.id}")


@router.get("/admin/devices/{device_id}")
def device_registration(page: PageDep, device_id: str) -> Response:
    device = page.scope.device(device_id)
    return render(
        page,
        "device_admin.html",
        section="devices",
        device=device,
        place=queries.places_of_devices(page.session, device_ids=[device.id]).get(device.id),
        units=[(u, b) for u, b in _units(page) if b.community_id == device.community_id],
    )


def _update(page: Page, device_id: str, **fields) -> Response:
    devices_api.update_device(
        device=page.scope.device(device_id),
        body=DeviceUpdate(**fields),
        scope=page.scope,
        session=page.session,
        now=page.now,
        me=page.user,
    )
    return redirect(f"/admin/devices/{device_id}")


@router.post("/admin/devices/{device_id}/key")
def rekey_device(
    page: PostedPageDep,
    device_id: str,
    key: FormText,
    key_type: Annotated[KeyType, Form()] = "public_key",
) -> Response:
    """A new key (the node was re-provisioned); old messages stay verifiable
    only against the old key, which the audit log records as changed."""
    return _update(page, device_id, **{key_type: key.strip()})


@router.post("/admin/devices/{device_id}/unit")
def move_device(
    page: PostedPageDep, device_id: str, unit: Annotated[int | None, Form()] = None
) -> Response:
    return _update(page, device_id, unit=unit)


@router.post("/admin/devices/{device_id}/remove")
def remove_device(page: PostedPageDep, device_id: str) -> Response:
    """Taken off its unit (e.g. a replaced meter): billing keeps its history."""
    return _update(page, device_id, removed_at=page.now)


# ------------------------------------------------------------ users


def _user(page: Page, user_id: int) -> User:
    page.require_admin()
    user = page.session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@router.get("/admin/users")
def users_page(page: PageDep) -> Response:
    page.require_admin()
    communities = queries.communities(page.session, scope=page.scope)
    return render(
        page,
        "users.html",
        section="users",
        users=users_api.list_users(session=page.session),
        communities=communities,
        names={c.id: c.name for c in communities},
    )


Communities = Annotated[list[int], Form()]


@router.post("/admin/users")
def create_user(
    page: PostedPageDep,
    username: FormText,
    password: FormText,
    role: Annotated[Role, Form()] = "manager",
    locale: Annotated[Literal["zh-CN", "en"], Form()] = "zh-CN",
    communities: Communities = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    page.require_admin()
    users_api.create_user(
        body=UserCreate(
            username=username.strip(),
            password=password,
            role=role,
            communities=communities,
            locale=locale,
        ),
        session=page.session,
        settings=page.settings,
        now=page.now,
        me=page.user,
    )
    return redirect("/admin/users")


@router.get("/admin/users/{user_id}")
def user_page(page: PageDep, user_id: int) -> Response:
    user = _user(page, user_id)
    return render(
        page,
        "user_edit.html",
        section="users",
        account=users_api.user_public(page.session, user),
        communities=queries.communities(page.session, scope=page.scope),
    )


@router.post("/admin/users/{user_id}")
def update_user(
    page: PostedPageDep,
    user_id: int,
    role: Annotated[Role, Form()],
    locale: Annotated[Literal["zh-CN", "en"], Form()],
    active: Annotated[str, Form()] = "",
    password: FormText = "",
    communities: Communities = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    _user(page, user_id)
    fields = {
        "role": role,
        "locale": locale,
        "active": active == "yes",
        "communities": communities,
    }
    if password:
        fields["password"] = password
    users_api.update_user(
        id=user_id,
        body=UserUpdate(**fields),
        session=page.session,
        settings=page.settings,
        now=page.now,
        me=page.user,
    )
    return redirect(f"/admin/users/{user_id}")


@router.post("/admin/users/{user_id}/delete")
def delete_user(page: PostedPageDep, user_id: int) -> Response:
    _user(page, user_id)
    users_api.delete_user(id=user_id, session=page.session, now=page.now, me=page.user)
    return redirect("/admin/users")
