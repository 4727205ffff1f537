"""The inventory consumer loop: runs inside `xcf server` (a thread) or alone (`xcf inventory worker`).

Each pending stack is processed in its own transaction, so one slow or failing stack never holds up
the others and a state write never waits for the consumer. On PostgreSQL the loop sleeps in LISTEN
and wakes on the NOTIFY a write sends after commit; on SQLite it polls. The outbox is the truth
either way: a missed notification only delays work until the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

import psycopg

from xcloudflow.db import Database
from xcloudflow.db.dialect import listen
from xcloudflow.inventory import service
from xcloudflow.keys.keyring import Keyring
from xcloudflow.state.service import NOTIFY_CHANNEL

log = logging.getLogger("xcloudflow.inventory")


class InventoryWorker:
    def __init__(
        self, db: Database, keyring: Keyring, *, poll_seconds: float = 2.0, defer_locked_seconds: float = 0
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.poll_seconds = poll_seconds
        self.defer_locked_seconds = defer_locked_seconds
        self.stop = threading.Event()

    def run_once(self) -> int:
        """Process every stack pending now; returns the number of events written."""
        total = 0
        with self.db.read() as session:
            heads = service.pending_stacks(
                session=session, limit=100, defer_locked_seconds=self.defer_locked_seconds
            )
        for head_id in heads:
            if self.stop.is_set():
                break
            try:
                with self.db.write() as session:
                    total += (
                        service.consume_stack(session=session, keyring=self.keyring, head_id=head_id) or 0
                    )
            except Exception:
                log.exception("inventory: stack %s failed; it stays pending and is retried", head_id)
        return total

    def _listener(self) -> psycopg.Connection[Any] | None:
        return listen(self.db.url, NOTIFY_CHANNEL)

    def run_forever(self) -> None:
        # Background work: let request handling and the engines go first (Linux: per-thread nice).
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        listener = self._listener()
        try:
            while not self.stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    log.exception("inventory: consumer pass failed")
                if listener is not None:
                    try:
                        for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                            pass
                    except psycopg.Error:
                        log.warning("inventory: LISTEN connection lost; reconnecting")
                        listener.close()
                        listener = self._listener()
                else:
                    self.stop.wait(self.poll_seconds)
        finally:
            if listener is not None:
                listener.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="inventory-worker", daemon=True)
        thread.start()
        return thread
