"""Users and their roles (admins only, except one's own account)."""

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.security import verify_password
from ...crud import audit
from ...crud import users as users_crud
from ...errors import Conflict, NotFound, Unauthorized
from ...models import User
from ...schemas import PasswordChange, UserCreate, UserPublic, UserUpdate
from ..deps import AdminUser, CurrentUser, NowDep, SessionDep, SettingsDep, require_admin

router = APIRouter(prefix="/users", tags=["users"])


def user_public(session: Session, user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        username=user.username,
        role=user.role,
        active=user.active,
        locale=user.locale,
        communities=users_crud.communities_of(session, user),
        created_at=user.created_at,
    )


@router.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser, session: SessionDep) -> UserPublic:
    return user_public(session, user)


@router.post("/me/password", status_code=204)
def change_my_password(
    body: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
) -> Response:
    """Change one's own password (every token of the user is revoked)."""
    if not verify_password(body.current_password, user.password_hash):
        raise Unauthorized("the current password is wrong")
    users_crud.update_user(
        session, user=user, password=body.new_password, scrypt_n=settings.scrypt_n
    )
    audit.record(
        session,
        actor=f"user:{user.username}",
        action="user.password",
        target=f"user:{user.id}",
        now=now,
    )
    return Response(status_code=204)


admin = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(require_admin)])


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@admin.get("", response_model=list[UserPublic])
def list_users(session: SessionDep) -> list[UserPublic]:
    return [user_public(session, u) for u in session.scalars(select(User).order_by(User.id))]


@admin.post("", response_model=UserPublic, status_code=201)
def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, now: NowDep, me: AdminUser
) -> UserPublic:
    user = users_crud.create_user(
        session,
        username=body.username,
        password=body.password,
        role=body.role,
        communities=body.communities,
        locale=body.locale,
        scrypt_n=settings.scrypt_n,
        now=now,
    )
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="user.create",
        target=f"user:{user.id}",
        detail={"username": user.username, "role": user.role, "communities": body.communities},
        now=now,
    )
    return user_public(session, user)


@admin.get("/{id}", response_model=UserPublic)
def read_user(id: int, session: SessionDep) -> UserPublic:
    return user_public(session, _user(session, id))


@admin.patch("/{id}", response_model=UserPublic)
def update_user(
    id: int,
    body: UserUpdate,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    me: AdminUser,
) -> UserPublic:
    user = _user(session, id)
    if user.id == me.id and (body.role not in (None, "admin") or body.active is False):
        raise Conflict("you cannot demote or deactivate yourself")
    users_crud.update_user(
        session,
        user=user,
        password=body.password,
        role=body.role,
        communities=body.communities,
        active=body.active,
        locale=body.locale,
        scrypt_n=settings.scrypt_n,
    )
    changed = body.model_dump(exclude_unset=True)
    if "password" in changed:
        changed["password"] = "(changed)"
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="user.update",
        target=f"user:{user.id}",
        detail={"username": user.username, **changed},
        now=now,
    )
    return user_public(session, user)


@admin.delete("/{id}", status_code=204)
def delete_user(id: int, session: SessionDep, now: NowDep, me: AdminUser) -> Response:
    user = _user(session, id)
    if user.id == me.id:
        raise Conflict("you cannot delete yourself")
    users_crud.delete_user(session, user=user)
    audit.record(
        session,
        actor=f"user:{me.username}",
        action="user.delete",
        target=f"user:{id}",
        detail={"username": user.username},
        now=now,
    )
    return Response(status_code=204)
