"""Delivery over real HTTP: bodies and signatures per format, retries, backoff, failure, the thread."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.notify.conftest import SECRET, Receiver, default_org, make_workspace
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify import service
from xcloudflow.notify.sender import NotificationSender, deliver_due
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

RUN_PAYLOAD: dict[str, Any] = {
    "run_id": 7,
    "number": 3,
    "workspace": "net/prod",
    "stage": "applied",
    "kind": "plan_and_apply",
    "summary": {"add": 1, "change": 2, "destroy": 0, "import": 0},
    "url": "http://xcf.example/runs/7",
}


def _create(admin: TestClient, name: str, url: str, **extra: Any) -> dict[str, Any]:
    resp = admin.post("/api/v1/notification-destinations", json={"name": name, "url": url, **extra})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _emit(db: Database, event: str, payload: dict[str, Any], workspace_id: int | None = None) -> int:
    with db.write() as session:
        return service.emit(
            session=session, org_id=default_org(db), workspace_id=workspace_id, event=event, payload=payload
        )


def _deliveries(admin: TestClient, name: str) -> list[dict[str, Any]]:
    resp = admin.get(f"/api/v1/notification-destinations/{name}/deliveries")
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _expected_signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_generic_test_delivery_is_signed(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "ops", receiver.url, secret=SECRET)
    queued = admin.post("/api/v1/notification-destinations/ops/test")
    assert queued.status_code == 201, queued.text
    assert queued.json()["status"] == "pending" and queued.json()["event"] == "test"

    assert deliver_due(db, keyring) == 1
    [req] = receiver.requests
    assert req.path == "/hook/abc123"
    assert req.headers["x-xcf-signature"] == _expected_signature(req.body)
    assert req.headers["x-xcf-event"] == "test"
    assert req.headers["x-xcf-delivery"] == str(queued.json()["id"])
    assert req.headers["content-type"].startswith("application/json")
    body = json.loads(req.body)
    assert set(body) == {"event", "sent_at", "delivery_id", "payload"}
    assert body["event"] == "test" and body["delivery_id"] == queued.json()["id"]
    assert body["payload"]["destination"] == "ops"
    assert abs(int(req.headers["x-xcf-timestamp"]) - int(utcnow().timestamp())) < 60

    [delivery] = _deliveries(admin, "ops")
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert delivery["response_status"] == 200 and delivery["last_error"] is None
    assert delivery["sent_at"] is not None and delivery["next_attempt_at"] is None
    assert deliver_due(db, keyring) == 0  # nothing left


def test_generic_without_secret_has_no_signature(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "plain", receiver.url, events=["run.applied"])
    assert _emit(db, "run.applied", RUN_PAYLOAD) == 1
    assert deliver_due(db, keyring) == 1
    [req] = receiver.requests
    assert "x-xcf-signature" not in req.headers
    assert json.loads(req.body)["payload"] == RUN_PAYLOAD


def test_slack_message_and_signature(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "slack", receiver.url, format="slack", secret=SECRET)
    assert (
        _emit(db, "run.needs_confirmation", {**RUN_PAYLOAD, "stage": "planned", "message": "a <b> & c"}) == 1
    )
    assert deliver_due(db, keyring) == 1
    [req] = receiver.requests
    assert req.headers["x-xcf-signature"] == _expected_signature(req.body)
    assert req.headers["x-xcf-event"] == "run.needs_confirmation"
    body = json.loads(req.body)
    assert body["text"] == "Run #3 on net/prod needs confirmation (+1 ~2 -0)"
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": body["text"]}
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "a &lt;b&gt; &amp; c" in section["text"]  # Slack markup is escaped
    assert "<http://xcf.example/runs/7|Open in XCloudFlow>" in section["text"]


def test_feishu_card_and_sign(admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver) -> None:
    _create(admin, "lark", receiver.url, format="feishu", secret=SECRET)
    assert _emit(db, "run.errored", {**RUN_PAYLOAD, "stage": "errored", "error": "provider exploded"}) == 1
    assert deliver_due(db, keyring) == 1
    [req] = receiver.requests
    body = json.loads(req.body)
    # As Feishu documents it: HMAC-SHA256 keyed by "timestamp\nsecret" over an empty message, base64.
    key = f"{body['timestamp']}\n{SECRET}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert isinstance(body["timestamp"], str) and abs(int(body["timestamp"]) - utcnow().timestamp()) < 60
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"] == {"tag": "plain_text", "content": "Run #3 errored on net/prod"}
    assert card["header"]["template"] == "red"
    assert "provider exploded" in card["elements"][0]["text"]["content"]
    assert card["elements"][1]["actions"][0]["url"] == "http://xcf.example/runs/7"
    [delivery] = _deliveries(admin, "lark")
    assert delivery["status"] == "sent"


def test_feishu_without_secret_has_no_sign(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "lark", receiver.url, format="feishu")
    admin.post("/api/v1/notification-destinations/lark/test")
    assert deliver_due(db, keyring) == 1
    body = json.loads(receiver.requests[0].body)
    assert "sign" not in body and "timestamp" not in body
    assert body["card"]["header"]["title"]["content"] == "Test notification from XCloudFlow"


def test_feishu_refusal_in_a_200_is_retried(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "lark", receiver.url, format="feishu", secret=SECRET)
    receiver.answer(200, body=b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}')
    admin.post("/api/v1/notification-destinations/lark/test")
    now = utcnow()
    assert deliver_due(db, keyring, now) == 1
    [delivery] = _deliveries(admin, "lark")
    assert delivery["status"] == "pending" and delivery["response_status"] == 200
    assert "code 19021" in delivery["last_error"]
    assert deliver_due(db, keyring, now + timedelta(minutes=5)) == 1
    assert _deliveries(admin, "lark")[0]["status"] == "sent"


def test_retry_on_500_then_success(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "ops", receiver.url, secret=SECRET)
    receiver.answer(500, body=b"upstream broke")
    admin.post("/api/v1/notification-destinations/ops/test")
    now = utcnow()
    assert deliver_due(db, keyring, now) == 1
    [delivery] = _deliveries(admin, "ops")
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["response_status"] == 500 and delivery["last_error"] == "HTTP 500: upstream broke"
    assert delivery["next_attempt_at"] is not None

    assert deliver_due(db, keyring, now + timedelta(seconds=5)) == 0  # backing off (30 s first)
    assert deliver_due(db, keyring, now + timedelta(seconds=31)) == 1
    [delivery] = _deliveries(admin, "ops")
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    assert delivery["response_status"] == 200 and delivery["last_error"] is None
    assert len(receiver.requests) == 2
    # Each attempt is signed over its own body, and the delivery id stays the same (receivers deduplicate).
    for req in receiver.requests:
        assert req.headers["x-xcf-signature"] == _expected_signature(req.body)
        assert req.headers["x-xcf-delivery"] == str(delivery["id"])


def test_failed_after_max_attempts_and_secret_never_recorded(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "ops", receiver.url, secret=SECRET)
    # A receiver that echoes the secret back must not get it into the delivery's record.
    receiver.answer(*([503] * 10), body=f"bad key {SECRET}".encode())
    admin.post("/api/v1/notification-destinations/ops/test")
    now = utcnow()
    for i in range(8):
        assert deliver_due(db, keyring, now + timedelta(hours=2 * i)) == 1
    assert deliver_due(db, keyring, now + timedelta(days=2)) == 0
    [delivery] = _deliveries(admin, "ops")
    assert delivery["status"] == "failed" and delivery["attempts"] == 8
    assert delivery["response_status"] == 503
    assert delivery["last_error"] == "HTTP 503: bad key ***"
    assert len(receiver.requests) == 8


def test_backoff_doubles(admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver) -> None:
    _create(admin, "ops", receiver.url)
    receiver.answer(500, 500, 500)
    admin.post("/api/v1/notification-destinations/ops/test")
    now = utcnow()
    for delay in (30, 60, 120):
        assert deliver_due(db, keyring, now, retry_base_seconds=30) == 1
        assert deliver_due(db, keyring, now + timedelta(seconds=delay - 1), retry_base_seconds=30) == 0
        now += timedelta(seconds=delay)
    assert deliver_due(db, keyring, now) == 1
    assert _deliveries(admin, "ops")[0]["status"] == "sent"


def test_unreachable_receiver(admin: TestClient, db: Database, keyring: Keyring) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    _create(admin, "gone", f"http://127.0.0.1:{port}/token-in-path/{SECRET}", secret=SECRET)
    admin.post("/api/v1/notification-destinations/gone/test")
    assert deliver_due(db, keyring, timeout_seconds=2) == 1
    [delivery] = _deliveries(admin, "gone")
    assert delivery["status"] == "pending" and delivery["response_status"] is None
    assert delivery["last_error"].startswith("ConnectError")
    assert SECRET not in delivery["last_error"]


def test_deleted_destination_drops_its_queue(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    _create(admin, "ops", receiver.url)
    admin.post("/api/v1/notification-destinations/ops/test")
    assert admin.delete("/api/v1/notification-destinations/ops").status_code == 200
    assert deliver_due(db, keyring) == 0
    assert receiver.requests == []


def test_sender_thread_wakes_on_commit(settings: Settings, db: Database, receiver: Receiver) -> None:
    # A long poll interval: only the in-process wake-up can deliver within the test's wait.
    slow = settings.model_copy(update={"notify_poll_seconds": 120.0})
    app = create_app(slow, maintenance=False, notification_sender=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        _create(client, "ops", receiver.url, secret=SECRET)
        receiver.arrived.clear()
        assert client.post("/api/v1/notification-destinations/ops/test").status_code == 201
        assert receiver.arrived.wait(20), "the sender did not post the test delivery"
        ws = make_workspace(db, "net", "prod")
        receiver.arrived.clear()
        assert _emit(db, "run.created", RUN_PAYLOAD, workspace_id=ws) == 1
        assert receiver.arrived.wait(20), "the sender did not post the emitted delivery"
    assert [json.loads(r.body)["event"] for r in receiver.requests] == ["test", "run.created"]


def test_sender_stop_is_prompt(db: Database, keyring: Keyring) -> None:
    sender = NotificationSender(db, keyring, poll_seconds=300)
    thread = sender.start()
    sender.stop(timeout=10)
    assert not thread.is_alive()


def test_the_documented_verification_snippet_accepts_a_real_delivery(
    admin: TestClient, db: Database, keyring: Keyring, receiver: Receiver
) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    snippet = doc.split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verify = namespace["verify"]

    _create(admin, "ops", receiver.url, secret=SECRET)
    admin.post("/api/v1/notification-destinations/ops/test")
    assert deliver_due(db, keyring) == 1
    [req] = receiver.requests
    assert verify(SECRET, req.body, req.headers["x-xcf-signature"])["event"] == "test"
    assert verify("wrong", req.body, req.headers["x-xcf-signature"]) is None
    assert verify(SECRET, req.body + b" ", req.headers["x-xcf-signature"]) is None
