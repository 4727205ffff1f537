"""The provider's HTTP client for the Conflux API (`/api/v1/conflux`).

The provider is a client of the server like the CLI: it never touches the database. Every call
answers the JSON the server sent or raises `ConfluxApiError` with the status and the server's
message, which the resources turn into Terraform diagnostics. Lookups answer None on 404 so that a
resource deleted behind Terraform's back is planned for creation again instead of failing the plan.

Calls that are safe to repeat (GETs, PUTs, DELETEs, and a publish carrying an idempotency key) are
retried a few times on transport errors and 502/503/504, so a server restart during `terraform
apply` does not leave a half-applied run; other calls are sent once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

PREFIX = "/api/v1/conflux"
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
RETRY_STATUSES = (502, 503, 504)
RETRIES = 3


class ConfluxApiError(Exception):
    """The server refused a call (or could not be reached: status 0)."""

    def __init__(self, method: str, path: str, status: int, message: str, details: Any = None) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.details = details


@dataclass(frozen=True)
class ConfigAddress:
    """`tenant/application/environment/name`, the config's address in the API paths."""

    tenant: str
    application: str
    environment: str
    name: str

    @classmethod
    def of(cls, config: dict[str, Any]) -> ConfigAddress:
        """The address of a ConfigOut (or any mapping with the four keys)."""
        return cls(
            str(config["tenant"]), str(config["application"]), str(config["environment"]), str(config["name"])
        )

    def path(self) -> str:
        parts = (self.tenant, self.application, self.environment, self.name)
        return f"{PREFIX}/configs/" + "/".join(quote(p, safe="") for p in parts)

    def __str__(self) -> str:
        return f"{self.tenant}/{self.application}/{self.environment}/{self.name}"


def _error_of(resp: httpx.Response) -> tuple[str, Any]:
    try:
        error = resp.json()["error"]
        return str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        return (resp.text[:500] or resp.reason_phrase), None


class ConfluxClient:
    """Typed calls to the Conflux API with a bearer token."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        retry_pause: float = 0.5,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry_pause = retry_pause
        self.http = httpx.Client(
            base_url=self.endpoint,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "terraform-provider-conflux"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201),
        missing_ok: bool = False,
        retry: bool = True,
        **kw: Any,
    ) -> Any:
        attempts = RETRIES if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self.http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                if attempt < attempts:
                    time.sleep(self.retry_pause * attempt)
                    continue
                raise ConfluxApiError(method, path, 0, f"cannot reach {self.endpoint}: {exc}") from exc
            if resp.status_code in RETRY_STATUSES and attempt < attempts:
                time.sleep(self.retry_pause * attempt)
                continue
            break
        if missing_ok and resp.status_code == 404:
            return None
        if resp.status_code not in ok:
            message, details = _error_of(resp)
            raise ConfluxApiError(method, path, resp.status_code, message, details)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # ------------------------------------------------------------------ configs

    def config_by_id(self, config_id: str) -> dict[str, Any] | None:
        """ConfigOut, or None when no config has this id (deleted, or not a UUID at all)."""
        try:
            found: dict[str, Any] | None = self._call(
                "GET", f"{PREFIX}/configs/by-id/{quote(config_id, safe='')}", missing_ok=True
            )
        except ConfluxApiError as exc:
            if exc.status in (400, 422):  # not a UUID: nothing can have that id
                return None
            raise
        return found

    def get_config(self, address: ConfigAddress) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("GET", address.path(), missing_ok=True)
        return found

    def put_config(self, address: ConfigAddress, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self._call("PUT", address.path(), json=body)
        return out

    def delete_config(self, address: ConfigAddress) -> None:
        self._call("DELETE", address.path(), ok=(200, 204), missing_ok=True)

    # ------------------------------------------------------------------ versions and releases

    def publish(self, address: ConfigAddress, body: dict[str, Any]) -> dict[str, Any]:
        """POST .../publish; repeatable only when the body carries an idempotency key."""
        out: dict[str, Any] = self._call(
            "POST", address.path() + "/publish", json=body, retry="idempotency_key" in body
        )
        return out

    def version(self, address: ConfigAddress, number: int) -> dict[str, Any] | None:
        """VersionOut with its content, None when that version does not exist (or no longer does)."""
        found: dict[str, Any] | None = self._call(
            "GET", f"{address.path()}/versions/{int(number)}", missing_ok=True
        )
        return found

    def make_stable(
        self, address: ConfigAddress, *, version_id: str, note: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"version_id": version_id}
        if note:
            body["note"] = note
        out: dict[str, Any] = self._call("POST", address.path() + "/releases", json=body, retry=False)
        return out

    # ------------------------------------------------------------------ policy

    def put_policy(self, address: ConfigAddress, rules: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = self._call("PUT", address.path() + "/policy", json={"rules": rules})
        return out

    def get_policy(self, address: ConfigAddress) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("GET", address.path() + "/policy", missing_ok=True)
        return found
