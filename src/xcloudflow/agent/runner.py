"""The agent loop: register, heartbeat, long-poll, run up to `concurrency` jobs in threads.

Per job, a companion thread ships buffered log chunks in order and polls the job's cancel signal;
the handler gets a `threading.Event` it should check (and pass on to the processes it runs). When
the server goes away the agent keeps retrying with backoff and the jobs keep running; their reports
arrive once it is back. A job whose lease the server took away (heartbeats lost) is told to stop and
is not reported: the server already marked it errored.
"""

from __future__ import annotations

import functools
import logging
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from xcloudflow import __version__
from xcloudflow.agent.client import AgentApiError, AgentClient, Halted, JobSpec, Registration

log = logging.getLogger("xcloudflow.agent")
CHUNK_CHARS = 16 * 1024
FLUSH_SECONDS = 0.3


@dataclass(frozen=True)
class JobOutcome:
    status: Literal["succeeded", "failed", "canceled"] = "succeeded"
    result: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False

    @classmethod
    def success(cls, result: dict[str, Any] | None = None) -> JobOutcome:
        return cls("succeeded", result)

    @classmethod
    def failure(
        cls, error: str, *, result: dict[str, Any] | None = None, retryable: bool = False
    ) -> JobOutcome:
        return cls("failed", result, error, retryable)

    @classmethod
    def canceled(cls, reason: str = "canceled on request") -> JobOutcome:
        return cls("canceled", None, reason)


class JobIO:
    """What a handler may do with its job: log, upload artifacts, and watch for cancellation."""

    def __init__(self, job: JobSpec, client: AgentClient) -> None:
        self.job = job
        self.cancelled = threading.Event()
        self._client = client
        self._lock = threading.Lock()
        self._pending: list[str] = []

    def log(self, text: str) -> None:
        """Queue a log entry (a line or several); shipped in order, in batches."""
        # User code prints anything (`cat /proc/1/environ`); a NUL is no text a log can store.
        text = text.replace("\x00", "\\0")
        if not text.endswith("\n"):
            text += "\n"
        with self._lock:
            for i in range(0, len(text), CHUNK_CHARS):
                self._pending.append(text[i : i + CHUNK_CHARS])

    def upload(self, name: str, data: bytes) -> None:
        self._client.upload(self.job, name, data)

    @property
    def client(self) -> AgentClient:
        """The agent's HTTP client, for handlers that fetch more of their job (run bundle, code, plan)."""
        return self._client

    def _take(self) -> list[str]:
        with self._lock:
            batch, self._pending = self._pending[:500], self._pending[500:]
        return batch


class Handler(Protocol):
    def __call__(self, job: JobSpec, io: JobIO) -> JobOutcome: ...


class _JobGone(Exception):
    """The server no longer lets this agent act for the job (finished, reaped, token refused)."""


def _default_name() -> str:
    # A random id: the name is shown to every reader of GET /agents, and a pid or host detail in it
    # only helps an attacker (it once pointed at /proc/<server pid>/environ).
    return f"agent-{secrets.token_hex(4)}"


class Agent:
    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        pool: str | None = None,
        concurrency: int = 1,
        handlers: Mapping[str, Handler] | None = None,
        name: str | None = None,
        poll_wait: float = 20.0,
        cancel_poll_seconds: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if handlers is None:
            from xcloudflow.agent.handlers import BUILTIN_HANDLERS

            handlers = BUILTIN_HANDLERS
        if not handlers:
            raise ValueError("an agent needs at least one handler")
        self.server_url = server_url
        self.pool_token = token
        self.pool = pool
        self.concurrency = concurrency
        self.handlers = dict(handlers)
        self.name = name or _default_name()
        self.poll_wait = poll_wait
        self.cancel_poll_seconds = cancel_poll_seconds
        self.draining = threading.Event()
        self.halt = threading.Event()
        self.client = AgentClient(server_url, halt=self.halt)
        self.registration: Registration | None = None
        self.error: BaseException | None = None
        self._slots = threading.Semaphore(concurrency)
        self._running: dict[str, JobIO] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._main: threading.Thread | None = None
        self.registered = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def _register(self) -> Registration:
        reg = self.client.register(
            self.pool_token,
            name=self.name,
            hostname=socket.gethostname(),
            version=__version__,
            capacity=self.concurrency,
            kinds=sorted(self.handlers),
            pool=self.pool,
        )
        log.info("agent %s registered in pool %s as agent %d", self.name, reg.pool, reg.agent_id)
        self.registration = reg
        self.registered.set()
        return reg

    def run(self) -> None:
        """Register and work until `stop()`; raises AgentApiError when the server refuses the token."""
        try:
            self._register()
            beat = threading.Thread(target=self._heartbeats, name=f"agent-{self.name}-heartbeat", daemon=True)
            beat.start()
            self._poll_loop()
        except Halted:
            pass
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.draining.set()
            self._wait_for_jobs(timeout=None if not self.halt.is_set() else 0)
            self.halt.set()
            self.client.close()

    def start(self) -> threading.Thread:
        self._main = threading.Thread(target=self._run_logged, name=f"agent-{self.name}", daemon=True)
        self._main.start()
        return self._main

    def _run_logged(self) -> None:
        try:
            self.run()
        except AgentApiError as exc:
            log.error("agent %s stopped: the server refused it: %s", self.name, exc.message)
        except Exception:
            log.exception("agent %s stopped on an unexpected error", self.name)

    def stop(self, *, grace: float = 30.0) -> None:
        """Stop claiming, ask running jobs to cancel, wait up to `grace` for their reports, halt."""
        self.draining.set()
        with self._lock:
            for io in self._running.values():
                io.cancelled.set()
        self._wait_for_jobs(timeout=grace)
        self.halt.set()
        self.client.close()
        if self._main is not None and self._main is not threading.current_thread():
            self._main.join(timeout=grace)

    def _wait_for_jobs(self, timeout: float | None) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def token(self) -> str:
        assert self.registration is not None
        return self.registration.token

    # ------------------------------------------------------------ loops

    def _heartbeats(self) -> None:
        assert self.registration is not None
        while not self.halt.wait(self.registration.heartbeat_seconds):
            with self._lock:
                running = list(self._running)
            try:
                lost = self.client.heartbeat(self.token, running)
            except Halted:
                return
            except AgentApiError as exc:
                log.warning("agent %s: heartbeat failed: %s", self.name, exc)
                if exc.status == 401:
                    self._reregister()
                continue
            for job_id in lost:
                self._lose(job_id, "the server no longer holds this job for this agent")

    def _reregister(self) -> None:
        try:
            self._register()
        except AgentApiError as exc:
            log.error("agent %s cannot register again (%s); stopping", self.name, exc.message)
            self.error = exc
            self.draining.set()
            self.halt.set()

    def _poll_loop(self) -> None:
        while not self.draining.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                job = self.client.next_job(self.token, wait=self.poll_wait)
            except Halted:
                self._slots.release()
                return
            except AgentApiError as exc:
                self._slots.release()
                if exc.status == 401:
                    self._reregister()
                    continue
                log.warning("agent %s: asking for work failed: %s", self.name, exc)
                self.halt.wait(1.0)
                continue
            except Exception:
                self._slots.release()
                if self.draining.is_set():
                    return
                raise
            if job is None:
                self._slots.release()
                continue
            thread = threading.Thread(target=self._run_job, args=(job,), name=f"job-{job.id}", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    # ------------------------------------------------------------ one job

    def _lose(self, job_id: str, reason: str) -> None:
        with self._lock:
            io = self._running.get(job_id)
            if io is None:
                return
            self._lost.add(job_id)
        log.warning("agent %s: job %s: %s; stopping it", self.name, job_id, reason)
        io.cancelled.set()

    def _job_call(self, job: JobSpec, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except AgentApiError as exc:
            if exc.status in (401, 403, 404, 409):
                self._lose(job.id, exc.message)
                raise _JobGone(exc.message) from exc
            raise

    def _companion(self, job: JobSpec, io: JobIO, done: threading.Event) -> None:
        """Ship logs every FLUSH_SECONDS and poll the cancel signal every cancel_poll_seconds."""
        since_cancel_poll = 0.0
        while True:
            finished = done.wait(FLUSH_SECONDS)
            try:
                while batch := io._take():
                    self._job_call(job, functools.partial(self.client.logs, job, batch))
                if finished:
                    return
                since_cancel_poll += FLUSH_SECONDS
                if since_cancel_poll >= self.cancel_poll_seconds and not io.cancelled.is_set():
                    since_cancel_poll = 0.0
                    if self._job_call(job, lambda: self.client.cancel_requested(job)):
                        log.info("agent %s: job %s: cancel requested", self.name, job.id)
                        io.cancelled.set()
            except (_JobGone, Halted):
                return
            except AgentApiError as exc:
                log.warning("agent %s: job %s: %s", self.name, job.id, exc)

    def _run_job(self, job: JobSpec) -> None:
        io = JobIO(job, self.client)
        if self.draining.is_set():
            io.cancelled.set()
        with self._lock:
            self._running[job.id] = io
        done = threading.Event()
        companion = threading.Thread(target=self._companion, args=(job, io, done), daemon=True)
        try:
            self._job_call(job, lambda: self.client.start(job))
            companion.start()
            outcome = self._handle(job, io)
            done.set()
            companion.join()
            with self._lock:
                lost = job.id in self._lost
            if not lost:
                self._job_call(
                    job,
                    lambda: self.client.finish(
                        job,
                        outcome=outcome.status,
                        result=outcome.result,
                        error=outcome.error,
                        retryable=outcome.retryable,
                    ),
                )
                log.info("agent %s: job %s (%s) %s", self.name, job.id, job.kind, outcome.status)
        except (_JobGone, Halted):
            pass
        except Exception:
            log.exception("agent %s: job %s: reporting failed", self.name, job.id)
        finally:
            done.set()
            with self._lock:
                self._running.pop(job.id, None)
                self._lost.discard(job.id)
            self._slots.release()

    def _handle(self, job: JobSpec, io: JobIO) -> JobOutcome:
        handler = self.handlers.get(job.kind)
        if handler is None:  # the server only hands out registered kinds; be safe anyway
            return JobOutcome.failure(f"agent {self.name} has no handler for {job.kind}")
        try:
            outcome = handler(job, io)
        except Exception as exc:
            io.log("".join(traceback.format_exception(exc)))
            return JobOutcome.failure(f"handler for {job.kind} raised {exc.__class__.__name__}: {exc}")
        if not isinstance(outcome, JobOutcome):
            return JobOutcome.failure(
                f"handler for {job.kind} returned {type(outcome).__name__}, not JobOutcome"
            )
        return outcome
