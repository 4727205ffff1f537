"""Rendering per format for the payloads the runs domain sends (pure functions, no I/O)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from xcloudflow.notify import formats

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN = {
    "run_id": "r1",
    "run_number": 12,
    "workspace": "net/prod",
    "kind": "plan",
    "summary": None,
    "error": None,
}


def test_titles_for_every_event() -> None:
    assert formats.title("run.created", RUN) == "Run #12 queued on net/prod"
    assert formats.title(
        "run.needs_confirmation", {**RUN, "summary": {"add": 2, "change": 0, "destroy": 1}}
    ) == ("Run #12 on net/prod needs confirmation (+2 ~0 -1)")
    assert formats.title("run.applied", RUN) == "Run #12 applied on net/prod"
    assert formats.title("run.errored", RUN) == "Run #12 errored on net/prod"
    drift = {**RUN, "drifted": [{"address": "terraform_data.a", "actions": ["update"]}], "count": 1}
    assert formats.title("run.drift_detected", drift) == "Drift detected on net/prod (1 resource)"
    assert formats.title("test", {}) == "Test notification from XCloudFlow"


def test_generic_body_is_exact_and_signed() -> None:
    req = formats.render(fmt="generic", event="run.applied", delivery_id=5, payload=RUN, secret=b"k", now=NOW)
    assert json.loads(req.body) == {
        "event": "run.applied",
        "sent_at": "2026-01-02T03:04:05+00:00",
        "delivery_id": 5,
        "payload": RUN,
    }
    assert req.headers["X-XCF-Signature"] == "sha256=" + hmac.new(b"k", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-XCF-Timestamp"] == str(int(NOW.timestamp()))
    assert req.headers["X-XCF-Event"] == "run.applied" and req.headers["X-XCF-Delivery"] == "5"


def test_feishu_sign_matches_the_documented_algorithm() -> None:
    ts = 1599360473
    expected = base64.b64encode(hmac.new(f"{ts}\nsecret".encode(), b"", hashlib.sha256).digest()).decode()
    assert formats.feishu_sign(b"secret", ts) == expected
    req = formats.render(
        fmt="feishu", event="run.drift_detected", delivery_id=1, payload=RUN, secret=b"secret", now=NOW
    )
    body = json.loads(req.body)
    assert body["timestamp"] == str(int(NOW.timestamp()))
    assert body["sign"] == formats.feishu_sign(b"secret", int(NOW.timestamp()))
    assert body["card"]["header"]["template"] == "yellow"


def test_slack_truncates_long_errors() -> None:
    msg = formats.slack_message("run.errored", {**RUN, "error": "x" * 10_000}, 1)
    assert len(msg["blocks"][1]["text"]["text"]) <= formats.SLACK_SECTION_MAX


@pytest.mark.parametrize(
    ("event", "payload", "title"),
    [
        (
            "compose.approval_requested",
            {"environment": "prod", "node": "network/network"},
            "Approval needed: network/network in prod",
        ),
        (
            "compose.failed",
            {"environment": "prod", "changeset": "0123456789ab"},
            "Failed: ChangeSet 01234567 of prod",
        ),
        (
            "compose.drift_detected",
            {"environment": "dev", "node": "db/db", "policy": "correct"},
            "Drift detected: db/db in dev (correct)",
        ),
        (
            "compose.rolled_back",
            {"environment": "dev", "changeset": "abcdef012345"},
            "Rolled back: ChangeSet abcdef01 of dev",
        ),
    ],
)
def test_compose_titles(event: str, payload: dict[str, str], title: str) -> None:
    assert formats.title(event, payload) == title
