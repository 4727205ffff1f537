"""The notification sender: posts due deliveries from the outbox, with retries, in a background thread.

Each pass claims a batch in a short write transaction (counting the attempt and pushing
`next_attempt_at` forward as a lease), posts every claimed delivery with no transaction open (a slow
receiver never holds a database lock), then records each outcome in its own transaction. A 2xx answer
marks the delivery sent; anything else (including a Feishu answer whose JSON `code` is not 0) schedules
a retry with exponential backoff, and after `max_attempts` marks it failed. A sender that dies
mid-post loses its lease and the delivery is retried: delivery is at least once, and receivers can
deduplicate on `X-XCF-Delivery`. Errors recorded never contain the secret or the webhook URL's path.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime

import httpx

from xcloudflow import __version__
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify import formats, service
from xcloudflow.notify.service import ClaimedDelivery

log = logging.getLogger("xcloudflow.notify")

MAX_RESPONSE_BYTES = 4096


def _scrub(text: str, claim: ClaimedDelivery) -> str:
    text = text.replace(claim.url, service.redact_url(claim.url))
    if claim.secret:
        text = text.replace(claim.secret.decode(errors="replace"), "***")
    return text


def _read_some(resp: httpx.Response) -> bytes:
    data = b""
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES:
            break
    return data[:MAX_RESPONSE_BYTES]


def _feishu_error(body: bytes) -> str | None:
    """Feishu answers HTTP 200 with `{"code": <non-zero>, "msg": ...}` when it refuses a message."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict):
        code = doc.get("code", doc.get("StatusCode", 0))
        if code not in (0, None):
            return (
                f"Feishu refused the message: code {code}: {doc.get('msg') or doc.get('StatusMessage') or ''}"
            )
    return None


def post_delivery(
    client: httpx.Client, claim: ClaimedDelivery, now: datetime
) -> tuple[bool, int | None, str | None]:
    """POST one delivery; returns (ok, response status, error)."""
    request = formats.render(
        fmt=claim.format,
        event=claim.event,
        delivery_id=claim.id,
        payload=claim.payload,
        secret=claim.secret,
        now=now,
    )
    try:
        with client.stream("POST", claim.url, content=request.body, headers=request.headers) as resp:
            body = _read_some(resp)
            status = resp.status_code
    except httpx.HTTPError as exc:
        return False, None, _scrub(f"{exc.__class__.__name__}: {exc}", claim)
    if 200 <= status < 300:
        refused = _feishu_error(body) if claim.format == "feishu" else None
        if refused:
            return False, status, _scrub(refused, claim)
        return True, status, None
    text = body.decode(errors="replace").strip()
    return False, status, _scrub(f"HTTP {status}" + (f": {text}" if text else ""), claim)


def make_client(timeout_seconds: float) -> httpx.Client:
    return httpx.Client(
        timeout=timeout_seconds, follow_redirects=False, headers={"User-Agent": f"XCloudFlow/{__version__}"}
    )


def deliver_due(
    db: Database,
    keyring: Keyring,
    now: datetime | None = None,
    *,
    client: httpx.Client | None = None,
    timeout_seconds: float = 10.0,
    max_attempts: int = 8,
    retry_base_seconds: float = 30.0,
    batch: int = 10,
    stop: threading.Event | None = None,
) -> int:
    """Post every delivery due at `now` (default: the current time); returns how many were attempted.

    Deliveries that fail are rescheduled after `now`, so one call attempts each delivery at most once.
    """
    now = now or utcnow()
    own_client = client is None
    http = client or make_client(timeout_seconds)
    lease_seconds = timeout_seconds * batch + 30  # covers posting the whole batch one after the other
    attempted = 0
    try:
        while stop is None or not stop.is_set():
            with db.write() as session:
                claims = service.claim_due(
                    session=session, keyring=keyring, now=now, limit=batch, lease_seconds=lease_seconds
                )
            if not claims:
                break
            for claim in claims:
                ok, status, error = post_delivery(http, claim, now)
                attempted += 1
                with db.write() as session:
                    outcome = service.record_attempt(
                        session=session,
                        claim=claim,
                        now=now,
                        ok=ok,
                        response_status=status,
                        error=error,
                        max_attempts=max_attempts,
                        retry_base_seconds=retry_base_seconds,
                    )
                if outcome == "failed":
                    log.warning(
                        "notification %s to %s failed after %d attempts: %s",
                        claim.id,
                        claim.destination,
                        claim.attempt,
                        error,
                    )
    finally:
        if own_client:
            http.close()
    return attempted


class NotificationSender:
    """The background thread of `xcf server`: a pass every `poll_seconds`, or as soon as a transaction
    that queued deliveries in this process commits."""

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 10.0,
        max_attempts: int = 8,
        retry_base_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, client: httpx.Client | None = None) -> int:
        return deliver_due(
            self.db,
            self.keyring,
            client=client,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            retry_base_seconds=self.retry_base_seconds,
            stop=self._stop,
        )

    def _run(self) -> None:
        with make_client(self.timeout_seconds) as client:
            while not self._stop.is_set():
                try:
                    self.run_once(client)
                except Exception:
                    log.exception("notifications: sender pass failed; retrying")
                service.WAKE.wait(self.poll_seconds)
                service.WAKE.clear()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="notification-sender", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        service.WAKE.set()  # cut the wait short
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
