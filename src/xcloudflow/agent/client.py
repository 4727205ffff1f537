"""The agent's HTTP client for /api/agent/v1: typed calls, retried with backoff while the server is away.

Transport errors, 429 and 5xx are retried (a server restart must not kill an agent or its jobs'
reports) until the agent halts; any other answer is an `AgentApiError` carrying the status and the
server's message, for the runner to decide (re-register on 401, drop a job on 409...).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("xcloudflow.agent")
PREFIX = "/api/agent/v1"


class AgentApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Halted(Exception):
    """The agent is stopping; the call was abandoned."""


@dataclass(frozen=True)
class JobSpec:
    """A claimed job as the agent sees it."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    token: str = field(repr=False)


@dataclass(frozen=True)
class Registration:
    agent_id: int
    token: str = field(repr=False)
    pool: str = ""
    heartbeat_seconds: float = 15.0


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:500] or resp.reason_phrase


class AgentClient:
    def __init__(
        self, server_url: str, *, halt: threading.Event, timeout: float = 30.0, max_backoff: float = 5.0
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.halt = halt
        self.max_backoff = max_backoff
        self._http = httpx.Client(base_url=self.server_url + PREFIX, timeout=timeout)
        self._poll = httpx.Client(base_url=self.server_url + PREFIX, timeout=timeout)
        # Until the server first answers (an agent, the embedded one above all, often starts first),
        # a refused connection is said once at info, then at debug; afterwards every failure warns.
        self._reached = False
        self._waiting_said = False

    def close(self) -> None:
        self._http.close()
        self._poll.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        token: str,
        retry: bool = True,
        http: httpx.Client | None = None,
        **kw: Any,
    ) -> httpx.Response:
        delay = 0.2
        client = http or self._http
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        while True:
            if self.halt.is_set():
                raise Halted()
            try:
                resp = client.request(method, path, headers=headers, **kw)
            except (httpx.TransportError, RuntimeError) as exc:  # RuntimeError: client closed by halt
                problem = f"{exc.__class__.__name__}: {exc}"
                if retry and not self._reached and isinstance(exc, httpx.ConnectError):
                    self._say_waiting(exc)
                    if self.halt.wait(delay):
                        raise Halted() from None
                    delay = min(delay * 2, self.max_backoff)
                    continue
            else:
                self._reached = True
                if resp.status_code < 400:
                    return resp
                if resp.status_code != 429 and resp.status_code < 500:
                    raise AgentApiError(resp.status_code, _message(resp))
                problem = f"{resp.status_code} {_message(resp)}"
            if not retry:
                raise AgentApiError(0, problem)
            log.warning("agent: %s %s failed (%s); retrying in %.1fs", method, path, problem, delay)
            if self.halt.wait(delay):
                raise Halted()
            delay = min(delay * 2, self.max_backoff)

    def _say_waiting(self, exc: httpx.ConnectError) -> None:
        if self._waiting_said:
            log.debug("agent: server at %s still not reachable (%s)", self.server_url, exc)
            return
        self._waiting_said = True
        log.info(
            "agent: waiting for the server at %s to accept connections (%s); retrying", self.server_url, exc
        )

    def register(
        self,
        pool_token: str,
        *,
        name: str,
        hostname: str,
        version: str,
        capacity: int,
        kinds: Sequence[str],
        pool: str | None,
    ) -> Registration:
        body = {
            "name": name,
            "hostname": hostname,
            "version": version,
            "capacity": capacity,
            "kinds": list(kinds),
            "pool": pool,
        }
        data = self._call("POST", "/register", token=pool_token, json=body).json()
        return Registration(
            agent_id=data["agent_id"],
            token=data["agent_token"],
            pool=data["pool"],
            heartbeat_seconds=float(data["heartbeat_seconds"]),
        )

    def heartbeat(self, agent_token: str, running: Sequence[str]) -> list[str]:
        """Returns the jobs the server says are no longer this agent's."""
        data = self._call(
            "POST", "/heartbeat", token=agent_token, retry=False, json={"running": list(running)}
        ).json()
        return [str(j) for j in data.get("lost", [])]

    def next_job(self, agent_token: str, *, wait: float) -> JobSpec | None:
        resp = self._call(
            "GET",
            "/jobs/next",
            token=agent_token,
            http=self._poll,
            params={"wait": wait},
            timeout=wait + 30,
        )
        if resp.status_code == 204:
            return None
        data = resp.json()
        return JobSpec(
            id=data["id"],
            kind=data["kind"],
            payload=data["payload"],
            attempt=data["attempt"],
            token=data["token"],
        )

    def start(self, job: JobSpec) -> None:
        self._call("POST", f"/jobs/{job.id}/start", token=job.token)

    def logs(self, job: JobSpec, chunks: Sequence[str]) -> int:
        return int(
            self._call("POST", f"/jobs/{job.id}/logs", token=job.token, json={"chunks": list(chunks)}).json()[
                "last_seq"
            ]
        )

    def upload(self, job: JobSpec, name: str, data: bytes) -> dict[str, Any]:
        resp = self._call(
            "PUT",
            f"/jobs/{job.id}/artifacts/{name}",
            token=job.token,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        result: dict[str, Any] = resp.json()
        return result

    def cancel_requested(self, job: JobSpec) -> bool:
        return bool(
            self._call("GET", f"/jobs/{job.id}/cancel", token=job.token, retry=False).json()[
                "cancel_requested"
            ]
        )

    def finish(
        self, job: JobSpec, *, outcome: str, result: dict[str, Any] | None, error: str | None, retryable: bool
    ) -> None:
        body = {"outcome": outcome, "result": result, "error": error, "retryable": retryable}
        self._call("POST", f"/jobs/{job.id}/finish", token=job.token, json=body)

    # ------------------------------------------------------------ terraform runs (job token)

    def run_bundle(self, job: JobSpec) -> dict[str, Any]:
        """What a terraform.plan / terraform.apply job needs: run, workspace, backend, vars, hooks."""
        data: dict[str, Any] = self._call("GET", f"/jobs/{job.id}/run", token=job.token).json()
        return data

    def code_archive(self, job: JobSpec) -> bytes:
        """The run's code version as the uploaded .tar.gz."""
        return self._call("GET", f"/jobs/{job.id}/code", token=job.token).content

    def plan_file(self, job: JobSpec) -> bytes:
        """The binary plan an apply job must apply (made by the run's plan job)."""
        return self._call("GET", f"/jobs/{job.id}/plan", token=job.token).content

    # ------------------------------------------------------------ compose jobs (job token)

    def compose_bundle(self, job: JobSpec) -> bytes:
        """The repository snapshot (a .tar.gz at the ChangeSet's commit) a compose job works in."""
        return self._call("GET", f"/jobs/{job.id}/compose-bundle", token=job.token).content
