"""The server's loop that breaks stale Terraform locks (the policy is `state.locking.expire_stale`).

It lives in `server/` because it joins two domains that must not know each other: state holds the
locks, jobs knows whether the job behind a `job:<id>` holder has finished. Safe with several replicas
(each lock is re-checked under its stack's row lock).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from xcloudflow.db.base import utcnow
from xcloudflow.jobs import service as jobs
from xcloudflow.server.deps import AppContext
from xcloudflow.state import locking

log = logging.getLogger("xcloudflow.state")


class LockExpiry:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.interval = ctx.settings.state_lock_expiry_interval_seconds

    def run_once(self, now: datetime | None = None) -> list[locking.ExpiredLock]:
        settings = self.ctx.settings
        with self.ctx.db.write() as session:
            expired = locking.expire_stale(
                session=session,
                now=now or utcnow(),
                max_age_seconds=settings.state_lock_max_age_seconds,
                expire_finished=settings.state_lock_expire_finished_jobs,
                job_holders=lambda holders: jobs.holder_statuses(session=session, holders=holders),
            )
        for lock in expired:
            log.warning("expired the lock %s of stack %s: %s", lock.info.ID, lock.ref, lock.reason)
        return expired

    async def loop(self) -> None:
        while True:
            try:
                await run_in_threadpool(self.run_once)
            except Exception:
                log.exception("state lock expiry failed")
            await asyncio.sleep(self.interval)
