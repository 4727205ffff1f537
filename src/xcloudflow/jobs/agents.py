"""Agent pools, pool tokens and agents: who may register, and who may pull a pool's jobs.

Secrets: pool tokens and agent tokens are `xcfa_` + 43 url-safe characters, job tokens `xcfj_...`;
only SHA-256 hashes are stored (as for API tokens). An agent token belongs to one registration;
revoking the pool token it registered with cuts that agent off as well. Callers own the transaction.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs.models import ACTIVE_STATUSES, Agent, AgentPool, AgentPoolToken, Job
from xcloudflow.jobs.schemas import (
    AgentOut,
    AgentRegister,
    AgentRegistered,
    HeartbeatAck,
    PoolOut,
    PoolTokenCreated,
    PoolTokenOut,
)

AGENT_TOKEN_PREFIX = "xcfa_"  # noqa: S105 - a prefix, not a secret
JOB_TOKEN_PREFIX = "xcfj_"  # noqa: S105
EMBEDDED_POOL = "embedded"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AgentIdentity:
    """The authenticated agent behind an agent-API request."""

    agent_id: int
    org_id: int
    pool_id: int
    pool: str
    name: str
    capacity: int
    kinds: tuple[str, ...]


# ---------------------------------------------------------------- pools


def embedded_agent_name() -> str:
    """A random name for the server's embedded agent: nothing of the host (no pid) in what readers see."""
    return f"embedded-{secrets.token_hex(4)}"


def ensure_pool(*, session: Session, org_id: int, name: str, actor: str | None = None) -> AgentPool:
    pool = session.scalars(
        select(AgentPool).where(AgentPool.org_id == org_id, AgentPool.name == name)
    ).first()
    if pool is None:
        pool = AgentPool(org_id=org_id, name=name, created_by=actor)
        session.add(pool)
        session.flush()
    return pool


def pool_by_name(*, session: Session, org_id: int, name: str) -> AgentPool:
    pool = session.scalars(
        select(AgentPool).where(AgentPool.org_id == org_id, AgentPool.name == name)
    ).first()
    if pool is None:
        raise NotFound(f"no agent pool {name}")
    return pool


def _online_counts(session: Session, org_id: int) -> dict[int, int]:
    rows = session.execute(
        select(Agent.pool_id, func.count())
        .where(Agent.org_id == org_id, Agent.status == "online")
        .group_by(Agent.pool_id)
    ).all()
    return {pool_id: int(n) for pool_id, n in rows}


def online_agents(*, session: Session, pool_id: int) -> int:
    """How many agents of a pool are heartbeating."""
    n = session.scalar(
        select(func.count()).select_from(Agent).where(Agent.pool_id == pool_id, Agent.status == "online")
    )
    return int(n or 0)


def pool_gauges(*, session: Session) -> list[tuple[str, int, int]]:
    """(pool name, jobs queued, agents online) for every pool, for the metrics gauges."""
    queued = dict(
        session.execute(select(Job.pool_id, func.count()).where(Job.status == "queued").group_by(Job.pool_id))
        .tuples()
        .all()
    )
    online = dict(
        session.execute(
            select(Agent.pool_id, func.count()).where(Agent.status == "online").group_by(Agent.pool_id)
        )
        .tuples()
        .all()
    )
    pools = session.execute(select(AgentPool.id, AgentPool.name)).tuples().all()
    return [(name, int(queued.get(pid, 0)), int(online.get(pid, 0))) for pid, name in pools]


def _pool_out(pool: AgentPool, online: int) -> PoolOut:
    return PoolOut(
        id=pool.id,
        name=pool.name,
        created_at=pool.created_at,
        created_by=pool.created_by,
        agents_online=online,
    )


def create_pool(*, session: Session, principal: Principal, ctx: AuditContext, name: str) -> PoolOut:
    iam.require(principal, "admin", action="creating agent pools")
    if session.scalars(
        select(AgentPool.id).where(AgentPool.org_id == principal.org_id, AgentPool.name == name)
    ).first():
        raise Conflict(f"agent pool {name} already exists")
    pool = ensure_pool(session=session, org_id=principal.org_id, name=name, actor=principal.user_name)
    audit.record(session=session, ctx=ctx, action="jobs.pool.create", resource=f"agent-pool/{name}")
    return _pool_out(pool, 0)


def list_pools(*, session: Session, org_id: int) -> list[PoolOut]:
    online = _online_counts(session, org_id)
    pools = session.scalars(select(AgentPool).where(AgentPool.org_id == org_id).order_by(AgentPool.name))
    return [_pool_out(p, online.get(p.id, 0)) for p in pools]


# ---------------------------------------------------------------- pool tokens


def _pool_token_out(tok: AgentPoolToken, pool: str) -> PoolTokenOut:
    return PoolTokenOut(
        id=tok.id,
        pool=pool,
        name=tok.name,
        prefix=tok.prefix,
        created_at=tok.created_at,
        created_by=tok.created_by,
        revoked_at=tok.revoked_at,
        last_used_at=tok.last_used_at,
    )


def mint_pool_token(*, session: Session, pool: AgentPool, name: str, actor: str | None) -> PoolTokenCreated:
    secret = new_secret(AGENT_TOKEN_PREFIX)
    tok = AgentPoolToken(
        pool_id=pool.id, name=name, token_hash=iam.hash_token(secret), prefix=secret[:9], created_by=actor
    )
    session.add(tok)
    session.flush()
    return PoolTokenCreated(**_pool_token_out(tok, pool.name).model_dump(), token=secret)


def create_pool_token(
    *, session: Session, principal: Principal, ctx: AuditContext, pool: str, name: str
) -> PoolTokenCreated:
    iam.require(principal, "admin", action="creating agent pool tokens")
    row = pool_by_name(session=session, org_id=principal.org_id, name=pool)
    created = mint_pool_token(session=session, pool=row, name=name, actor=principal.user_name)
    audit.record(
        session=session,
        ctx=ctx,
        action="jobs.pool_token.create",
        resource=f"agent-pool/{pool}/token/{created.id}",
        details={"name": name},
    )
    return created


def list_pool_tokens(*, session: Session, principal: Principal, pool: str) -> list[PoolTokenOut]:
    iam.require(principal, "admin", action="listing agent pool tokens")
    row = pool_by_name(session=session, org_id=principal.org_id, name=pool)
    toks = session.scalars(
        select(AgentPoolToken).where(AgentPoolToken.pool_id == row.id).order_by(AgentPoolToken.id)
    )
    return [_pool_token_out(t, row.name) for t in toks]


def revoke_pool_token(
    *, session: Session, principal: Principal, ctx: AuditContext | None, pool: str, token_id: int
) -> PoolTokenOut:
    iam.require(principal, "admin", action="revoking agent pool tokens")
    row = pool_by_name(session=session, org_id=principal.org_id, name=pool)
    tok = session.scalars(
        select(AgentPoolToken).where(AgentPoolToken.id == token_id, AgentPoolToken.pool_id == row.id)
    ).first()
    if tok is None:
        raise NotFound(f"no token {token_id} in agent pool {pool}")
    if tok.revoked_at is None:
        _revoke(session, tok)
        if ctx is not None:
            audit.record(
                session=session,
                ctx=ctx,
                action="jobs.pool_token.revoke",
                resource=f"agent-pool/{pool}/token/{tok.id}",
            )
    return _pool_token_out(tok, row.name)


def _revoke(session: Session, tok: AgentPoolToken) -> None:
    tok.revoked_at = utcnow()
    session.execute(
        update(Agent)
        .where(Agent.pool_token_id == tok.id)
        .values(status="offline")
        .execution_options(synchronize_session=False)
    )
    session.flush()


def revoke_pool_token_secret(*, session: Session, token: str) -> None:
    """Revoke by the secret itself (the embedded agent's own token at shutdown)."""
    tok = session.scalars(
        select(AgentPoolToken).where(AgentPoolToken.token_hash == iam.hash_token(token))
    ).first()
    if tok is not None and tok.revoked_at is None:
        _revoke(session, tok)


# ---------------------------------------------------------------- agents


def authenticate_pool_token(*, session: Session, token: str) -> tuple[AgentPoolToken, AgentPool]:
    row = session.execute(
        select(AgentPoolToken, AgentPool)
        .join(AgentPool, AgentPool.id == AgentPoolToken.pool_id)
        .where(AgentPoolToken.token_hash == iam.hash_token(token))
    ).first()
    if row is None:
        raise wrong_token(session=session, token=token, expected="an agent pool token")
    tok, pool = row
    if tok.revoked_at is not None:
        raise Unauthorized(f"the agent pool token {tok.prefix}... was revoked")
    return tok, pool


def register_agent(
    *, session: Session, pool_token: str, body: AgentRegister, lease_seconds: float
) -> AgentRegistered:
    tok, pool = authenticate_pool_token(session=session, token=pool_token)
    if body.pool is not None and body.pool != pool.name:
        raise Forbidden(f"this token belongs to agent pool {pool.name}, not {body.pool}")
    now = utcnow()
    tok.last_used_at = now
    secret = new_secret(AGENT_TOKEN_PREFIX)
    agent = Agent(
        org_id=pool.org_id,
        pool_id=pool.id,
        pool_token_id=tok.id,
        name=body.name,
        hostname=body.hostname,
        version=body.version,
        capacity=body.capacity,
        kinds=sorted(set(body.kinds)),
        token_hash=iam.hash_token(secret),
        registered_at=now,
        last_heartbeat_at=now,
        status="online",
    )
    session.add(agent)
    session.flush()
    return AgentRegistered(
        agent_id=agent.id,
        agent_token=secret,
        pool=pool.name,
        heartbeat_seconds=lease_seconds / 4,
        lease_seconds=lease_seconds,
    )


def authenticate_agent(*, session: Session, token: str) -> AgentIdentity:
    row = session.execute(
        select(Agent, AgentPoolToken.revoked_at, AgentPool.name)
        .join(AgentPoolToken, AgentPoolToken.id == Agent.pool_token_id)
        .join(AgentPool, AgentPool.id == Agent.pool_id)
        .where(Agent.token_hash == iam.hash_token(token))
    ).first()
    if row is None:
        raise wrong_token(session=session, token=token, expected="an agent token (from POST register)")
    agent, revoked_at, pool = row
    if revoked_at is not None:
        raise Unauthorized(
            f"agent {agent.name} registered with a pool token that was revoked; register with a new one"
        )
    return AgentIdentity(
        agent_id=agent.id,
        org_id=agent.org_id,
        pool_id=agent.pool_id,
        pool=pool,
        name=agent.name,
        capacity=agent.capacity,
        kinds=tuple(agent.kinds),
    )


def token_kind(*, session: Session, token: str) -> str | None:
    """What a valid token is, to tell a person they used the wrong one (None: not valid at all)."""
    digest = iam.hash_token(token)
    if session.scalars(select(Agent.id).where(Agent.token_hash == digest)).first() is not None:
        return "an agent token"
    if session.scalars(select(AgentPoolToken.id).where(AgentPoolToken.token_hash == digest)).first():
        return "an agent pool token"
    if session.scalars(select(Job.id).where(Job.token_hash == digest)).first() is not None:
        return "a job token"
    try:
        iam.authenticate(session=session, token=token)
    except Unauthorized:
        return None
    return "an API token"


def wrong_token(*, session: Session, token: str, expected: str) -> DomainError:
    kind = token_kind(session=session, token=token)
    if kind is None:
        return Unauthorized(f"the token is not valid: this route needs {expected}")
    return Forbidden(f"this route needs {expected}; the request carried {kind}")


def heartbeat(
    *, session: Session, agent: AgentIdentity, running: Sequence[uuid.UUID], lease_seconds: float
) -> HeartbeatAck:
    """The agent is alive; extend the leases of the jobs it says it still runs.

    Only listed jobs are extended: a restarted agent process does not keep alive jobs it lost.
    """
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    session.execute(
        update(Agent)
        .where(Agent.id == agent.agent_id)
        .values(last_heartbeat_at=now, status="online")
        .execution_options(synchronize_session=False)
    )
    lost: list[uuid.UUID] = []
    if running:
        jobs = session.scalars(select(Job).where(Job.id.in_(running)).with_for_update()).all()
        mine = {j.id for j in jobs if j.agent_id == agent.agent_id and j.status in ACTIVE_STATUSES}
        for job in jobs:
            if job.id in mine:
                job.lease_expires_at = lease
        lost = [j for j in running if j not in mine]
    session.flush()
    return HeartbeatAck(lease_expires_at=lease, lost=lost)


def mark_offline(*, session: Session, offline_after_seconds: float) -> int:
    cutoff = utcnow() - timedelta(seconds=offline_after_seconds)
    result = session.execute(
        update(Agent)
        .where(Agent.status == "online", Agent.last_heartbeat_at < cutoff)
        .values(status="offline")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def list_agents(*, session: Session, org_id: int, pool: str | None = None) -> list[AgentOut]:
    stmt = (
        select(Agent, AgentPool.name)
        .join(AgentPool, AgentPool.id == Agent.pool_id)
        .where(Agent.org_id == org_id)
        .order_by(Agent.id)
    )
    if pool:
        stmt = stmt.where(AgentPool.name == pool)
    return [
        AgentOut(
            id=a.id,
            pool=pool_name,
            name=a.name,
            hostname=a.hostname,
            version=a.version,
            capacity=a.capacity,
            kinds=list(a.kinds),
            status=a.status,
            registered_at=a.registered_at,
            last_heartbeat_at=a.last_heartbeat_at,
        )
        for a, pool_name in session.execute(stmt).all()
    ]
