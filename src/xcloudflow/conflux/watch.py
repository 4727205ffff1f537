"""Long-poll watch fan-out: one waiter loop per process wakes every matching watcher.

A change in an environment (tenant/application/environment) adds a row to `conflux_notifications`
and, in the same transaction, a PostgreSQL NOTIFY naming the environment; once the transaction
commits, this process's hubs are also poked directly (that is all SQLite has). Each hub runs ONE thread
that LISTENs (PostgreSQL) or waits for pokes and polls (SQLite), reads the new notifications of a
woken environment with ONE query, and hands them to every waiter of that environment: 500 watchers
of one environment cost one query per change, not 500 (no thundering herd on the database).

Correctness does not depend on the signals: a waiter first checks the table itself after
subscribing, the hub re-reads every watched environment every `poll_seconds` (SQLite) or ten times
that (PostgreSQL, as a safety net), and notification ids increase in commit order within an
environment (the service locks the environment row before adding one). Never block the event loop
here: database work runs in the hub's thread or the caller's thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.orm import Session

from xcloudflow.conflux.schemas import NotificationOut
from xcloudflow.db import Database
from xcloudflow.db.dialect import listen, notify

log = logging.getLogger("xcloudflow.conflux")

NOTIFY_CHANNEL = "xcf_conflux_changed"
_PENDING = "xcf_conflux_wake"
FETCH_LIMIT = 500

# (org id, tenant, application, environment)
Scope = tuple[int, str, str, str]
Fetch = Callable[[Database, Scope, int, int], list[NotificationOut]]
LastId = Callable[[Database, Scope], int]

_HUBS: weakref.WeakSet[WatchHub] = weakref.WeakSet()


_LOCAL_LISTENERS: list[Callable[[set[Scope]], None]] = []


def on_local_change(listener: Callable[[set[Scope]], None]) -> None:
    """Call `listener` with the scopes a transaction of this process changed, once it commits."""
    if listener not in _LOCAL_LISTENERS:
        _LOCAL_LISTENERS.append(listener)


def _after_commit(session: Session) -> None:
    scopes: set[Scope] = session.info.pop(_PENDING, set())
    for listener in list(_LOCAL_LISTENERS):
        listener(scopes)
    for hub in list(_HUBS):
        hub.poke(scopes)


def queue_wakeup(session: Session, scope: Scope) -> None:
    """Wake watchers of `scope` once this transaction commits: NOTIFY other replicas, poke this one."""
    notify(session, NOTIFY_CHANNEL, json.dumps(list(scope)))
    pending: set[Scope] | None = session.info.get(_PENDING)
    if pending is None:
        session.info[_PENDING] = pending = set()
        event.listen(session, "after_commit", _after_commit, once=True)
    pending.add(scope)


@dataclass(eq=False)
class Waiter:
    """One watch request: what it watches, from which id, and the event that ends its wait."""

    scope: Scope
    names: frozenset[str] | None
    since: int
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)
    found: list[NotificationOut] = field(default_factory=list)

    def wants(self, note: NotificationOut) -> bool:
        return note.id > self.since and (self.names is None or note.name in self.names)


@dataclass
class _ScopeState:
    cursor: int
    waiters: set[Waiter] = field(default_factory=set)


class WatchHub:
    """The waiters of one app, by environment, and the thread that wakes them."""

    def __init__(self, db: Database, *, fetch: Fetch, last_id: LastId, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.fetch = fetch
        self.last_id = last_id
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._scopes: dict[Scope, _ScopeState] = {}
        self._dirty: set[Scope] = set()
        self._wake = threading.Event()
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        _HUBS.add(self)

    # ---------------------------------------------------------------- waiters (any thread)

    def subscribe(self, waiter: Waiter) -> None:
        """Register `waiter` (call before checking the table, from a worker thread: may query)."""
        self._ensure_thread()
        with self._lock:
            state = self._scopes.get(waiter.scope)
            if state is not None:
                state.waiters.add(waiter)
                return
        cursor = self.last_id(self.db, waiter.scope)
        with self._lock:
            state = self._scopes.setdefault(waiter.scope, _ScopeState(cursor=cursor))
            state.waiters.add(waiter)

    def unsubscribe(self, waiter: Waiter) -> None:
        with self._lock:
            state = self._scopes.get(waiter.scope)
            if state is None:
                return
            state.waiters.discard(waiter)
            if not state.waiters:
                del self._scopes[waiter.scope]

    def poke(self, scopes: set[Scope]) -> None:
        with self._lock:
            wanted = {s for s in scopes if s in self._scopes}
            if not wanted:
                return
            self._dirty |= wanted
        self._wake.set()

    def waiting(self) -> int:
        with self._lock:
            return sum(len(s.waiters) for s in self._scopes.values())

    # ---------------------------------------------------------------- the loop (its own thread)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self.stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="conflux-watch", daemon=True)
            self._thread.start()

    def _deliver(self, scope: Scope) -> None:
        with self._lock:
            state = self._scopes.get(scope)
            if state is None or not state.waiters:
                return
            cursor = state.cursor
        notes: list[NotificationOut] = []
        while True:
            batch = self.fetch(self.db, scope, cursor, FETCH_LIMIT)
            notes.extend(batch)
            if batch:
                cursor = batch[-1].id
            if len(batch) < FETCH_LIMIT:
                break
        if not notes:
            return
        with self._lock:
            state = self._scopes.get(scope)
            if state is None:
                return
            state.cursor = max(state.cursor, cursor)
            woken = []
            for waiter in state.waiters:
                if waiter.event.is_set():
                    continue
                found = [n for n in notes if waiter.wants(n)]
                if found:
                    waiter.found = found
                    woken.append(waiter)
        for waiter in woken:
            with contextlib.suppress(RuntimeError):  # the waiter's loop closed meanwhile
                waiter.loop.call_soon_threadsafe(waiter.event.set)

    def _take_dirty(self, everything: bool) -> set[Scope]:
        with self._lock:
            dirty = set(self._scopes) if everything else self._dirty & set(self._scopes)
            self._dirty.clear()
            return dirty

    def _deliver_all(self, scopes: set[Scope]) -> None:
        for scope in scopes:
            try:
                self._deliver(scope)
            except Exception:
                log.exception("conflux watch: reading notifications of %s failed", "/".join(map(str, scope)))

    def _run_polling(self) -> None:
        while not self.stop.is_set():
            poked = self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self.stop.is_set():
                return
            self._deliver_all(self._take_dirty(everything=not poked))

    def _listen(self) -> psycopg.Connection[Any] | None:
        return listen(self.db.url, NOTIFY_CHANNEL)

    def _run_listening(self) -> None:
        conn = self._listen()
        safety = max(self.poll_seconds * 10, 5.0)
        while not self.stop.is_set():
            if conn is None:
                # No LISTEN connection: poll like SQLite until one can be made.
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                self._deliver_all(self._take_dirty(everything=True))
                conn = self._listen()
                continue
            scopes: set[Scope] = set()
            try:
                for note in conn.notifies(timeout=min(safety, 1.0), stop_after=1):
                    scopes.add(_scope_of(note.payload))
                if scopes:  # drain what arrived together, then read once per environment
                    for note in conn.notifies(timeout=0.001):
                        scopes.add(_scope_of(note.payload))
            except psycopg.Error:
                log.warning("conflux watch: LISTEN connection lost; reconnecting")
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                conn = None
                continue
            except ValueError:
                log.warning("conflux watch: ignoring a malformed notification")
            if self.stop.is_set():
                break
            scopes.discard(_NO_SCOPE)
            if scopes:
                self.poke(scopes)
            if self._wake.is_set():
                self._wake.clear()
                self._deliver_all(self._take_dirty(everything=False))
            self._safety_tick(safety)
        if conn is not None:
            conn.close()

    _last_safety: float = 0.0

    def _safety_tick(self, every: float) -> None:
        import time

        now = time.monotonic()
        if now - self._last_safety >= every:
            self._last_safety = now
            self._deliver_all(self._take_dirty(everything=True))

    def _run(self) -> None:
        if self.db.is_sqlite:
            self._run_polling()
        else:
            self._run_listening()

    def close(self) -> None:
        self.stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _HUBS.discard(self)


_NO_SCOPE: Scope = (0, "", "", "")


def _scope_of(payload: str) -> Scope:
    try:
        org_id, tenant, application, environment = json.loads(payload)
        return (int(org_id), str(tenant), str(application), str(environment))
    except (ValueError, TypeError):
        return _NO_SCOPE
