"""Organizations, users, roles and API tokens.

Tokens are `xcf_` + 43 url-safe random characters; only their SHA-256 is stored (a fast hash is right
for 256-bit random secrets: there is nothing to brute-force). A token acts in one organization with
its user's role there.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from xcloudflow.iam.models import ApiToken, Membership, Organization, User
from xcloudflow.iam.schemas import ROLE_PERMISSIONS, Permission, Principal, TokenCreated, TokenOut, UserOut
from xcloudflow.settings import DEFAULT_ORG as DEFAULT_ORG  # the name settings' local roots default to

ADMIN_USER = "admin"
TOKEN_PREFIX = "xcf_"  # noqa: S105 - a prefix, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def require(principal: Principal, role: str, *, action: str) -> None:
    if not principal.has(role):
        raise Forbidden(f"{action} needs the {role} role; {principal.user_name} is {principal.role}")


def require_permission(principal: Principal, permission: Permission, *, action: str) -> None:
    if not principal.can(permission):
        holders = sorted(role for role, granted in ROLE_PERMISSIONS.items() if permission in granted)
        raise Forbidden(
            f"{action} needs the {permission} permission (roles: {', '.join(holders)}, or an admin's "
            f"grant: xcf user grant NAME {permission}); {principal.user_name} is {principal.role}"
        )


def ensure_org(*, session: Session, name: str) -> Organization:
    org = session.scalars(select(Organization).where(Organization.name == name)).first()
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def bootstrap(*, session: Session, token: str | None) -> str | None:
    """First start: the default organization and, if there are no users, the admin.

    Returns the admin token when one was generated here (to print once), else None.
    """
    org = ensure_org(session=session, name=DEFAULT_ORG)
    if session.scalars(select(User).limit(1)).first() is not None:
        return None
    if token is not None and len(token) < 16:
        raise Invalid("XCF_BOOTSTRAP_TOKEN must be at least 16 characters")
    user = User(name=ADMIN_USER)
    session.add(user)
    session.flush()
    session.add(Membership(user_id=user.id, org_id=org.id, role="admin"))
    secret = token or new_token_secret()
    session.add(
        ApiToken(
            user_id=user.id, org_id=org.id, name="bootstrap", token_hash=hash_token(secret), prefix=secret[:8]
        )
    )
    audit.record(
        session=session,
        ctx=AuditContext(actor="system", org_id=org.id),
        action="iam.bootstrap",
        resource=f"user/{ADMIN_USER}",
    )
    session.flush()
    return None if token else secret


def authenticate(*, session: Session, token: str) -> Principal:
    row = session.execute(
        select(ApiToken, User, Organization, Membership)
        .join(User, User.id == ApiToken.user_id)
        .join(Organization, Organization.id == ApiToken.org_id)
        .join(Membership, (Membership.user_id == User.id) & (Membership.org_id == Organization.id))
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        raise Unauthorized("the token is not valid")
    tok, user, org, member = row
    now = utcnow()
    if tok.revoked_at is not None:
        raise Unauthorized("the token was revoked")
    if tok.expires_at is not None and tok.expires_at <= now:
        raise Unauthorized("the token has expired")
    if user.disabled_at is not None:
        raise Unauthorized("the user is disabled")
    return Principal(
        user_id=user.id,
        user_name=user.name,
        org_id=org.id,
        org_name=org.name,
        role=member.role,
        token_id=tok.id,
        grants=frozenset(_grants(member)),
    )


def _grants(member: Membership) -> list[Permission]:
    return [Permission(g) for g in member.grants or [] if g in Permission._value2member_map_]


def set_grants(
    *, session: Session, principal: Principal, ctx: AuditContext, name: str, grants: list[Permission]
) -> UserOut:
    """Give one member of the organization exactly these permissions beyond their role (admins)."""
    require(principal, "admin", action="granting permissions")
    row = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(User.name == name, Membership.org_id == principal.org_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no user {name} in organization {principal.org_name}")
    user, member = row
    before = [str(g) for g in _grants(member)]
    member.grants = sorted({str(g) for g in grants}) or None
    audit.record(
        session=session,
        ctx=ctx,
        action="iam.user.grants",
        resource=f"user/{name}",
        details={"before": before, "after": member.grants or []},
    )
    session.flush()
    return _user_out(user, member)


def _user_out(user: User, member: Membership) -> UserOut:
    return UserOut(
        name=user.name,
        role=member.role,
        created_at=user.created_at,
        disabled=user.disabled_at is not None,
        grants=_grants(member),
    )


def create_user(
    *, session: Session, principal: Principal, ctx: AuditContext, name: str, role: str
) -> UserOut:
    require(principal, "admin", action="creating users")
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    elif session.get(Membership, (user.id, principal.org_id)) is not None:
        raise Conflict(f"user {name} already exists in {principal.org_name}")
    member = Membership(user_id=user.id, org_id=principal.org_id, role=role)
    session.add(member)
    audit.record(
        session=session, ctx=ctx, action="iam.user.create", resource=f"user/{name}", details={"role": role}
    )
    session.flush()
    return UserOut(name=user.name, role=role, created_at=user.created_at, disabled=False)


def list_users(*, session: Session, principal: Principal) -> list[UserOut]:
    require(principal, "admin", action="listing users")
    rows = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == principal.org_id)
        .order_by(User.name)
    ).all()
    return [_user_out(u, m) for u, m in rows]


def _token_out(tok: ApiToken, user_name: str) -> TokenOut:
    return TokenOut(
        id=tok.id,
        name=tok.name,
        user=user_name,
        prefix=tok.prefix,
        created_at=tok.created_at,
        expires_at=tok.expires_at,
        revoked_at=tok.revoked_at,
    )


def create_token(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    name: str,
    user_name: str | None,
    expires_at: datetime | None,
) -> TokenCreated:
    owner_name = user_name or principal.user_name
    if owner_name != principal.user_name:
        require(principal, "admin", action="creating tokens for other users")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise Invalid(
                "expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z)", details={"field": "expires_at"}
            )
        if expires_at <= utcnow():
            raise Invalid("expires_at is in the past", details={"field": "expires_at"})
    owner = session.execute(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(User.name == owner_name, Membership.org_id == principal.org_id)
    ).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"no user {owner_name} in organization {principal.org_name}")
    secret = new_token_secret()
    tok = ApiToken(
        user_id=owner.id,
        org_id=principal.org_id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:8],
        expires_at=expires_at,
    )
    session.add(tok)
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="iam.token.create",
        resource=f"token/{tok.id}",
        details={"user": owner_name, "name": name},
    )
    return TokenCreated(**_token_out(tok, owner.name).model_dump(), token=secret)


def list_tokens(*, session: Session, principal: Principal) -> list[TokenOut]:
    stmt = (
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.org_id == principal.org_id)
        .order_by(ApiToken.id)
    )
    if not principal.has("admin"):
        stmt = stmt.where(ApiToken.user_id == principal.user_id)
    return [_token_out(t, u.name) for t, u in session.execute(stmt).all()]


def revoke_token(*, session: Session, principal: Principal, ctx: AuditContext, token_id: int) -> TokenOut:
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id, ApiToken.org_id == principal.org_id)
    ).first()
    if row is None:
        raise NotFound(f"no token {token_id}")
    tok, user = row
    if tok.user_id != principal.user_id:
        require(principal, "admin", action="revoking other users' tokens")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
        audit.record(session=session, ctx=ctx, action="iam.token.revoke", resource=f"token/{tok.id}")
    session.flush()
    return _token_out(tok, user.name)


def list_org_ids(*, session: Session) -> list[int]:
    return list(session.scalars(select(Organization.id).order_by(Organization.id)))


def create_organization(*, session: Session, ctx: AuditContext, name: str, admin_name: str) -> str:
    """A new organization with its first admin; returns that admin's token (shown once)."""
    if session.scalars(select(Organization).where(Organization.name == name)).first() is not None:
        raise Conflict(f"organization {name} already exists")
    org = ensure_org(session=session, name=name)
    user = session.scalars(select(User).where(User.name == admin_name)).first()
    if user is None:
        user = User(name=admin_name)
        session.add(user)
        session.flush()
    session.add(Membership(user_id=user.id, org_id=org.id, role="admin"))
    secret = new_token_secret()
    session.add(
        ApiToken(
            user_id=user.id, org_id=org.id, name="initial", token_hash=hash_token(secret), prefix=secret[:8]
        )
    )
    audit.record(
        session=session,
        ctx=AuditContext(actor=ctx.actor, org_id=org.id, request_id=ctx.request_id),
        action="iam.org.create",
        resource=f"org/{name}",
        details={"admin": admin_name},
    )
    session.flush()
    return secret


def org_name(*, session: Session, org_id: int) -> str:
    name = session.scalars(select(Organization.name).where(Organization.id == org_id)).first()
    if name is None:
        raise NotFound(f"no organization {org_id}")
    return name


def org_id_by_name(*, session: Session, name: str) -> int:
    org_id = session.scalars(select(Organization.id).where(Organization.name == name)).first()
    if org_id is None:
        raise NotFound(f"no organization {name}")
    return org_id
