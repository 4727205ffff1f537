"""How a delivery looks on the wire, per destination format, and how it is signed.

- generic: `{"event", "sent_at", "delivery_id", "payload"}`.
- slack: an incoming-webhook message, `{"text": <fallback>, "blocks": [...]}` (Block Kit).
- feishu: a custom-bot message card, `{"msg_type": "interactive", "card": {...}}`; with a signing secret
  the body also carries `timestamp` (Unix seconds, a string) and
  `sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`, as Feishu/Lark document it.

Every request carries `X-XCF-Event`, `X-XCF-Delivery` and `X-XCF-Timestamp`; with a secret also
`X-XCF-Signature: sha256=<hex HMAC-SHA256(secret, exact body bytes)>` (Feishu ignores the headers and
checks its body fields). Pure functions: no database, no network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SIGNATURE_HEADER = "X-XCF-Signature"
TIMESTAMP_HEADER = "X-XCF-Timestamp"
EVENT_HEADER = "X-XCF-Event"
DELIVERY_HEADER = "X-XCF-Delivery"
SLACK_SECTION_MAX = 2900  # Slack refuses section text over 3000 characters
SLACK_HEADER_MAX = 150

_FEISHU_COLORS = {
    "run.created": "blue",
    "run.needs_confirmation": "orange",
    "run.applied": "green",
    "run.errored": "red",
    "run.drift_detected": "yellow",
}


@dataclass(frozen=True)
class RenderedRequest:
    body: bytes
    headers: dict[str, str]


def sign_body(secret: bytes, body: bytes) -> str:
    """The `X-XCF-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def feishu_sign(secret: bytes, timestamp: int) -> str:
    """Feishu/Lark custom bot signature: the key is `timestamp + "\\n" + secret`, the message is empty."""
    key = str(timestamp).encode() + b"\n" + secret
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _summary_counts(payload: dict[str, Any]) -> str:
    summary = payload.get("summary")
    if not isinstance(summary, dict):
        return ""
    parts = [f"+{summary.get('add', 0)}", f"~{summary.get('change', 0)}", f"-{summary.get('destroy', 0)}"]
    if summary.get("import"):
        parts.append(f"↓{summary['import']}")
    return " ".join(parts)


def title(event: str, payload: dict[str, Any]) -> str:
    """One line a person reads in a chat notification."""
    ws = payload.get("workspace") or "?"
    number = payload.get("number", payload.get("run_number"))
    run = f"Run #{number}" if number is not None else "A run"
    counts = _summary_counts(payload)
    if event == "run.created":
        return f"{run} queued on {ws}"
    if event == "run.needs_confirmation":
        return f"{run} on {ws} needs confirmation" + (f" ({counts})" if counts else "")
    if event == "run.applied":
        return f"{run} applied on {ws}" + (f" ({counts})" if counts else "")
    if event == "run.errored":
        return f"{run} errored on {ws}"
    if event == "run.drift_detected":
        count = payload.get("count")
        return f"Drift detected on {ws}" + (
            f" ({count} resource{'' if count == 1 else 's'})" if isinstance(count, int) else ""
        )
    if event.startswith("compose."):
        return _compose_title(event, payload)
    if event == "test":
        return "Test notification from XCloudFlow"
    return f"XCloudFlow: {event}"


def _compose_title(event: str, payload: dict[str, Any]) -> str:
    env = payload.get("environment") or "?"
    node = payload.get("node")
    what = f"{node} in {env}" if node else f"ChangeSet {str(payload.get('changeset', '?'))[:8]} of {env}"
    if event == "compose.approval_requested":
        return f"Approval needed: {what}"
    if event == "compose.applied":
        return f"Applied: {what}"
    if event == "compose.failed":
        return f"Failed: {what}"
    if event == "compose.drift_detected":
        return f"Drift detected: {what}" + (f" ({payload['policy']})" if payload.get("policy") else "")
    if event == "compose.rolled_back":
        return f"Rolled back: {what}"
    return f"XCloudFlow: {event} ({what})"


def _details(payload: dict[str, Any]) -> list[tuple[str, str]]:
    fields = []
    for key in ("kind", "stage", "message"):
        value = payload.get(key)
        if value not in (None, ""):
            fields.append((key.capitalize(), str(value)))
    counts = _summary_counts(payload)
    if counts:
        fields.append(("Changes", counts))
    drifted = payload.get("drifted")
    if isinstance(drifted, list) and drifted:
        addresses = [str(d.get("address")) if isinstance(d, dict) else str(d) for d in drifted[:10]]
        more = f" and {len(drifted) - 10} more" if len(drifted) > 10 else ""
        fields.append(("Drifted", ", ".join(addresses) + more))
    error = payload.get("error")
    if error:
        fields.append(("Error", str(error)))
    if payload.get("requested_by"):
        fields.append(("Requested by", str(payload["requested_by"])))
    return fields


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (`<!channel>` pings everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(event: str, payload: dict[str, Any], delivery_id: int) -> dict[str, Any]:
    head = title(event, payload)
    lines = [f"*{_slack_escape(k)}:* {_slack_escape(v)}" for k, v in _details(payload)]
    url = payload.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        lines.append(f"<{_slack_escape(url)}|Open in XCloudFlow>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _truncate(head, SLACK_HEADER_MAX)}}
    ]
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _truncate("\n".join(lines), SLACK_SECTION_MAX)},
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{event}` · delivery {delivery_id}"}]}
    )
    return {"text": head, "blocks": blocks}


def feishu_message(event: str, payload: dict[str, Any], delivery_id: int) -> dict[str, Any]:
    head = title(event, payload)
    lines = [f"**{k}:** {v}" for k, v in _details(payload)]
    lines.append(f"<font color='grey'>{event} · delivery {delivery_id}</font>")
    elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(lines)}}]
    url = payload.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": "Open in XCloudFlow"},
                        "type": "primary",
                        "url": url,
                    }
                ],
            }
        )
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": head},
                "template": _FEISHU_COLORS.get(event, "grey"),
            },
            "elements": elements,
        },
    }


def render(
    *,
    fmt: str,
    event: str,
    delivery_id: int,
    payload: dict[str, Any],
    secret: bytes | None,
    now: datetime,
) -> RenderedRequest:
    """The body and headers of one delivery attempt (signed with `secret` when there is one)."""
    timestamp = int(now.timestamp())
    message: dict[str, Any]
    if fmt == "slack":
        message = slack_message(event, payload, delivery_id)
    elif fmt == "feishu":
        message = feishu_message(event, payload, delivery_id)
        if secret is not None:
            message = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **message}
    else:
        message = {"event": event, "sent_at": now.isoformat(), "delivery_id": delivery_id, "payload": payload}
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign_body(secret, body)
    return RenderedRequest(body=body, headers=headers)
