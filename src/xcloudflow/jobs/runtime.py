"""What the server runs for the job queue besides requests: the NOTIFY listener and the lease reaper.

Both are threads, so they work the same under any ASGI server; several replicas may reap at once
(rows are taken with SKIP LOCKED and re-checked), which only makes expiry prompter.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from xcloudflow.db import Database
from xcloudflow.jobs import service
from xcloudflow.jobs.config import JobSettings
from xcloudflow.jobs.waker import WAKER, JobWaker, NotifyListener

log = logging.getLogger("xcloudflow.jobs")


@dataclass
class JobsRuntime:
    db: Database
    settings: JobSettings
    waker: JobWaker = WAKER
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _listener: NotifyListener | None = None

    def reap_once(self) -> int:
        with self.db.write() as session:
            errored = service.reap_expired(session=session, lease_seconds=self.settings.job_lease_seconds)
        for job_id in errored:
            log.warning("job %s errored: its agent stopped heartbeating", job_id)
        return len(errored)

    def _reaper(self) -> None:
        while not self.stop.wait(self.settings.reap_interval_seconds):
            try:
                self.reap_once()
            except Exception:
                log.exception("jobs: reaping expired leases failed; retrying")

    def start(self) -> None:
        self._listener = NotifyListener(self.db, self.waker)
        self._listener.start()
        thread = threading.Thread(target=self._reaper, name="jobs-reaper", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
