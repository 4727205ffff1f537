"""Wake-ups for agents long-polling for work: an in-process signal and a PostgreSQL LISTEN thread.

Enqueueing calls `notify_enqueued`, which (a) queues a NOTIFY on the caller's transaction (PostgreSQL
delivers it after commit, to every replica) and (b) wakes this process's waiters once the caller's
transaction commits. The LISTEN thread turns other replicas' NOTIFYs into the same wake-up. Neither is
the truth: a waiter that misses every signal still re-checks the queue every `job_poll_seconds`.
Waiters subscribe *before* they look at the queue, so a job enqueued in between is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.orm import Session

from xcloudflow.db import Database
from xcloudflow.db.dialect import listen, notify

log = logging.getLogger("xcloudflow.jobs")

NOTIFY_CHANNEL = "xcf_jobs_queued"
_PENDING = "xcf_jobs_wake"


class JobWaker:
    """Subscriptions per pool id; `wake` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def subscription(self, pool_id: int) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(pool_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(pool_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[pool_id]

    def wake(self, pool_id: int) -> None:
        with self._lock:
            entries = list(self._waiters.get(pool_id, ()))
        for loop, ev in entries:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(ev.set)


# One per process: enqueue may happen in any domain's transaction, which knows nothing of the app.
WAKER = JobWaker()


def _after_commit(session: Session) -> None:
    pools: set[int] = session.info.pop(_PENDING, set())
    for pool_id in pools:
        WAKER.wake(pool_id)


def notify_enqueued(session: Session, pool_id: int) -> None:
    notify(session, NOTIFY_CHANNEL, str(pool_id))
    pending: set[int] | None = session.info.get(_PENDING)
    if pending is None:
        session.info[_PENDING] = pending = set()
        event.listen(session, "after_commit", _after_commit, once=True)
    pending.add(pool_id)


class NotifyListener:
    """A thread that LISTENs on PostgreSQL and wakes this process's waiters (no-op on SQLite)."""

    def __init__(self, db: Database, waker: JobWaker = WAKER, *, timeout: float = 1.0) -> None:
        self.db = db
        self.waker = waker
        self.timeout = timeout
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> psycopg.Connection[Any] | None:
        return listen(self.db.url, NOTIFY_CHANNEL)

    def _run(self) -> None:
        conn = None
        while not self.stop.is_set():
            if conn is None:
                conn = self._connect()
                if conn is None:
                    self.stop.wait(5)
                    continue
            try:
                for note in conn.notifies(timeout=self.timeout):
                    with contextlib.suppress(ValueError):
                        self.waker.wake(int(note.payload))
                    if self.stop.is_set():
                        break
            except psycopg.Error:
                log.warning("jobs: LISTEN connection lost; reconnecting")
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def start(self) -> None:
        if self.db.is_sqlite:
            return
        self._thread = threading.Thread(target=self._run, name="jobs-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
