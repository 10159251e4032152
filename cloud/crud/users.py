"""Users, their community scopes, logins and access tokens."""

import re

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..core.security import dummy_hash, hash_password, new_token, token_hash, verify_password
from ..errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from ..models import (
    COMMUNITY_ROLES,
    ROLES,
    AccessToken,
    Community,
    LoginFailure,
    User,
    UserCommunity,
)
from . import audit

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8
ADMIN = "admin"


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"password must be at least {MIN_PASSWORD} characters")


def communities_of(session: Session, user: User) -> list[int]:
    return list(
        session.scalars(
            select(UserCommunity.community_id)
            .where(UserCommunity.user_id == user.id)
            .order_by(UserCommunity.community_id)
        )
    )


def _set_communities(session: Session, user: User, communities: list[int]) -> None:
    wanted = set(communities)
    if wanted:
        found = set(session.scalars(select(Community.id).where(Community.id.in_(wanted))))
        missing = sorted(wanted - found)
        if missing:
            raise NotFound(f"community {missing[0]} not found")
    session.execute(delete(UserCommunity).where(UserCommunity.user_id == user.id))
    session.add_all(UserCommunity(user_id=user.id, community_id=c) for c in sorted(wanted))


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    communities: list[int],
    scrypt_n: int,
    now: float,
    locale: str = "zh-CN",
) -> User:
    if not USERNAME.match(username):
        raise Invalid("username must be 1-64 characters of letters, digits and _ . @ -")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    check_password_rules(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")
    user = User(
        username=username,
        password_hash=hash_password(password, n=scrypt_n),
        role=role,
        active=True,
        locale=locale,
        created_at=now,
    )
    session.add(user)
    session.flush()
    _set_communities(session, user, communities if role in COMMUNITY_ROLES else [])
    return user


def update_user(
    session: Session,
    *,
    user: User,
    scrypt_n: int,
    password: str | None = None,
    role: str | None = None,
    communities: list[int] | None = None,
    active: bool | None = None,
    locale: str | None = None,
) -> User:
    if role is not None:
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        user.role = role
    if password is not None:
        check_password_rules(password)
        user.password_hash = hash_password(password, n=scrypt_n)
        revoke_all_tokens(session, user=user)
    if active is not None:
        user.active = active
        if not active:
            revoke_all_tokens(session, user=user)
    if locale is not None:
        user.locale = locale
    if communities is not None or role is not None:
        keep = communities if communities is not None else communities_of(session, user)
        _set_communities(session, user, keep if user.role in COMMUNITY_ROLES else [])
    session.flush()
    return user


def delete_user(session: Session, *, user: User) -> None:
    session.execute(delete(AccessToken).where(AccessToken.user_id == user.id))
    session.execute(delete(UserCommunity).where(UserCommunity.user_id == user.id))
    session.delete(user)
    session.flush()


def ensure_admin(session: Session, *, password: str | None, scrypt_n: int, now: float) -> bool:
    """On a database without users, create `admin` with `password`. True when
    it did; raises ValueError when it must and no password was given."""
    if session.scalar(select(func.count()).select_from(User)):
        return False
    if not password:
        raise ValueError(
            "first start: set KAPOK_ADMIN_PASSWORD to the password for the user 'admin'"
        )
    create_user(
        session,
        username=ADMIN,
        password=password,
        role="admin",
        communities=[],
        scrypt_n=scrypt_n,
        now=now,
    )
    return True


def login(
    session: Session,
    *,
    username: str,
    password: str,
    ip: str,
    now: float,
    lifetime_seconds: float,
    max_failures: int,
    window_seconds: int,
    scrypt_n: int,
) -> tuple[str, User]:
    """A new access token for a correct username and password.

    Failed attempts are counted per (username, client address): after
    `max_failures` within `window_seconds`, even a correct password gets
    TooManyRequests until the oldest failure leaves the window. A failure is
    recorded in the session before Unauthorized is raised: commit it.
    """
    since = now - window_seconds
    failures = session.scalars(
        select(LoginFailure.at)
        .where(LoginFailure.username == username, LoginFailure.ip == ip, LoginFailure.at > since)
        .order_by(LoginFailure.at)
    ).all()
    if len(failures) >= max_failures:
        wait = failures[-max_failures] + window_seconds - now
        raise TooManyRequests(
            f"too many failed logins for {username!r}; try again in {max(1, round(wait))} s",
            retry_after=round(wait + 0.5),
        )
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(password, user.password_hash if user else dummy_hash(scrypt_n))
    if not ok or user is None or not user.active:
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.username == username, LoginFailure.ip == ip, LoginFailure.at <= since
            )
        )
        session.add(LoginFailure(username=username, ip=ip, at=now))
        audit.record(
            session,
            actor=f"ip:{ip}",
            action="user.login_failed",
            target=f"user:{username[:60]}",
            detail={"ip": ip},
            now=now,
        )
        raise Unauthorized("wrong username or password")
    session.execute(
        delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.ip == ip)
    )
    token = new_token()
    session.add(
        AccessToken(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + lifetime_seconds,
        )
    )
    audit.record(
        session,
        actor=f"user:{user.username}",
        action="user.login",
        target=f"user:{user.username}",
        detail={"ip": ip},
        now=now,
    )
    session.flush()
    return token, user


def user_by_token(session: Session, *, token: str, now: float) -> User | None:
    row = session.execute(
        select(User, AccessToken)
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(AccessToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    user, access = row
    if access.revoked_at is not None or access.expires_at <= now or not user.active:
        return None
    return user


def revoke_token(session: Session, *, token: str, now: float) -> None:
    access = session.scalar(select(AccessToken).where(AccessToken.token_hash == token_hash(token)))
    if access is not None and access.revoked_at is None:
        access.revoked_at = now


def revoke_all_tokens(session: Session, *, user: User) -> None:
    session.execute(delete(AccessToken).where(AccessToken.user_id == user.id))
