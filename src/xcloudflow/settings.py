"""All configuration of XCloudFlow, read once from `XCF_*` environment variables.

Nothing here opens a database or touches the disk at import time: `Settings()` is built by the entry
point (CLI, server factory, tests) and passed in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ORG = "default"


@dataclass(frozen=True)
class LocalRoots:
    """Which server directories each organization may read as git repositories (compose, GitOps).

    Local repositories are a server operator's grant, never an organization's own setting: an
    organization admin must not be able to give their organization another one's directory. Two forms:
    `/srv/a:/srv/b` (os.pathsep-separated) grants the default organization only (the single-team
    setup of the README); `default=/srv/repos;team-b=/srv/b1:/srv/b2` grants per organization name
    (entries separated by `;`). An organization not named gets no local root at all.
    """

    by_org: Mapping[str, tuple[Path, ...]]

    @classmethod
    def parse(cls, text: str) -> LocalRoots:
        def paths(part: str) -> tuple[Path, ...]:
            return tuple(Path(p).expanduser().resolve() for p in part.split(os.pathsep) if p.strip())

        if "=" not in text:
            found = paths(text)
            return cls({DEFAULT_ORG: found} if found else {})
        by_org: dict[str, tuple[Path, ...]] = {}
        for entry in text.split(";"):
            if not entry.strip():
                continue
            org, sep, part = entry.partition("=")
            if not sep or not org.strip() or "/" in org:
                raise ValueError(
                    f"local roots entry {entry.strip()!r} is not ORG=PATH[{os.pathsep}PATH...] "
                    "(entries separated by ';')"
                )
            by_org[org.strip()] = by_org.get(org.strip(), ()) + paths(part)
        return cls(by_org)

    def of(self, org_name: str) -> list[Path]:
        return list(self.by_org.get(org_name, ()))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XCF_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".xcloudflow")
    database_url: str | None = None
    bootstrap_token: SecretStr | None = None
    encryption_key: SecretStr | None = None
    # Old master keys (base64, comma-separated) still accepted for unwrapping data keys during rotation.
    encryption_old_keys: SecretStr | None = None
    state_max_bytes: int = 256 * 1024 * 1024
    state_retention_days: int = 30
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"
    # Stale Terraform locks (see state.locking): every this many seconds `xcf server` breaks, audited,
    # the locks whose holder is a job that has finished (on by default: its token no longer works, so
    # nobody can release them but an admin) and, when set above 0, the locks older than the limit that
    # no live job holds (off by default; set it above your longest apply).
    state_lock_expiry_interval_seconds: float = Field(default=60.0, gt=0)
    state_lock_expire_finished_jobs: bool = True
    state_lock_max_age_seconds: float = Field(default=0.0, ge=0)
    # Purge loop interval for soft-deleted stacks past retention.
    maintenance_interval_seconds: float = 3600.0
    # How often the inventory consumer polls the outbox (on PostgreSQL it also wakes on NOTIFY).
    inventory_poll_seconds: float = 2.0
    # A stack locked for less than this long (an apply or plan is running) is ingested after it.
    inventory_defer_locked_seconds: float = 120.0
    # How often `xcf server` starts due drift checks, dispatches runs freed by an unlock and ends runs
    # stuck waiting for an agent pool with nobody online.
    runs_tick_seconds: float = Field(default=30.0, gt=0)
    # A run whose job waits this long for a pool with no agent online ends errored, saying so.
    run_queue_timeout_seconds: float = Field(default=1800.0, gt=0)
    # Notifications: the sender thread of `xcf server` posts due deliveries every this many seconds (and
    # at once when this process queues one); a failing delivery is retried after 30 s, 60 s, 120 s...
    # up to `notify_max_attempts` attempts in all.
    notify_sender: bool = True
    notify_poll_seconds: float = Field(default=5.0, gt=0)
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_retry_base_seconds: float = Field(default=30.0, gt=0)
    # Control plane (compose): how often `xcf server` advances ChangeSets and starts due drift checks
    # and TTL collections; which local directories each organization may read as repositories (local
    # paths and file:// URLs are refused otherwise; see `LocalRoots`); the size cap of a repository
    # snapshot (compressed, kept with the ChangeSet) and of the commit read to make it (unpacked, as
    # `git archive` streams it; git is stopped past it); attempts and backoff base for a node whose
    # apply fails transiently.
    compose_tick_seconds: float = Field(default=2.0, gt=0)
    # Config clients poll resolve/watch: their token's principal is remembered this long per process
    # (a revoked token keeps working on those two routes for at most this long; 0 turns it off).
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    compose_local_roots: str = ""
    compose_bundle_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    compose_repo_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    compose_git_timeout_seconds: float = Field(default=120.0, gt=0)
    compose_max_attempts: int = Field(default=3, ge=1, le=20)
    compose_retry_base_seconds: float = Field(default=10.0, gt=0)
    # GitOps: how often `xcf server` looks for sources due for a sync (a webhook wakes it at once);
    # which local directories each organization may read as repositories (as compose_local_roots);
    # the time limit of one git fetch; how much of a commit a sync may unpack (as compose_repo_max_bytes).
    gitops_tick_seconds: float = Field(default=15.0, gt=0)
    gitops_local_roots: str = ""
    gitops_git_timeout_seconds: float = Field(default=120.0, gt=0)
    gitops_repo_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    # Config center (conflux): how often `xcf server` applies the configs' retention policies; the
    # longest a watch waits before answering 304 (at most 60 s); how often watchers' environments are
    # re-read on SQLite (PostgreSQL wakes them by NOTIFY and re-reads ten times less often).
    # What a config resolves from is remembered this long per process (changes made through another
    # replica are seen within it; through this one at once). 0 turns it off.
    conflux_resolve_cache_seconds: float = Field(default=1.0, ge=0)
    conflux_retention_interval_seconds: float = Field(default=3600.0, gt=0)
    conflux_watch_timeout_seconds: float = Field(default=60.0, gt=0, le=60)
    conflux_watch_poll_seconds: float = Field(default=1.0, gt=0)
    # Content bounds (xcloudflow.bounded, docs/security.md "content bounds"): nesting depth of every
    # JSON/YAML/TOML document (states, Pulumi exports, Conflux content, compose and GitOps YAML); values
    # in one YAML document with its aliases expanded, and values its aliases may add; GitOps templates'
    # output, loop iterations (and calls) and wall-clock time per render.
    content_max_depth: int = Field(default=100, ge=8, le=500)
    yaml_max_nodes: int = Field(default=250_000, ge=1000)
    yaml_max_alias_nodes: int = Field(default=10_000, ge=0)
    template_max_output_chars: int = Field(default=1024 * 1024, ge=1024)
    template_max_iterations: int = Field(default=1_000_000, ge=1000)
    template_timeout_seconds: float = Field(default=2.0, gt=0)

    # The HTTP edge (server/middleware.py, server/limits.py, server/ratelimit.py, server/http.py).
    # Request bodies: the cap of every route, counted while the body streams in (413 above it); the
    # Terraform/Pulumi backend uses XCF_STATE_MAX_BYTES, code-version uploads and job artifacts their
    # own limits, conflux content and the agent API `http_max_document_bytes`.
    http_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    http_max_document_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Token buckets per process (each replica or worker counts on its own): requests per second and
    # burst, per API/agent/job token and per client address. 0 turns a limit off. 429 + Retry-After.
    rate_limit_token_per_second: float = Field(default=30.0, ge=0)
    rate_limit_token_burst: int = Field(default=300, ge=1)
    rate_limit_address_per_second: float = Field(default=100.0, ge=0)
    rate_limit_address_burst: int = Field(default=1000, ge=1)
    # Bad credentials: an address that sends this many requests answered 401 within the window is
    # answered 429 for `auth_block_seconds` (logged and audited). 0 turns it off.
    auth_failure_limit: int = Field(default=30, ge=0)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    auth_block_seconds: float = Field(default=300.0, gt=0)
    # Connections (uvicorn, per worker): at most this many at once (more are answered 503); a
    # connection that has not sent a complete request head this long after it opened (or after its
    # previous request) is closed; idle keep-alive connections are closed after `http_keep_alive_seconds`.
    http_max_connections: int = Field(default=1000, ge=1)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_keep_alive_seconds: float = Field(default=5.0, gt=0)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        if isinstance(value, str):
            return Path(value).expanduser()
        if isinstance(value, Path):
            return value.expanduser()
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the plain libpq form and use psycopg 3.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'xcloudflow.db'}"

    @field_validator("compose_local_roots", "gitops_local_roots")
    @classmethod
    def _roots(cls, value: str) -> str:
        LocalRoots.parse(value)  # a malformed value stops the start, naming what is wrong
        return value

    @property
    def compose_roots(self) -> LocalRoots:
        return LocalRoots.parse(self.compose_local_roots)

    @property
    def gitops_roots(self) -> LocalRoots:
        return LocalRoots.parse(self.gitops_local_roots)

    @property
    def key_file(self) -> Path:
        return self.data_dir / "master.key"
