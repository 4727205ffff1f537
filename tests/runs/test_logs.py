"""A run's log over the API: pages with plan:N / apply:N / run:1 cursors, and the SSE stream."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.runs.conftest import ScriptedAgent, make_workspace, plan_result, show, start_run

PLAN_LINES = ("Refreshing state...\n", "Plan: 1 to add, 0 to change, 0 to destroy.\n", "done\n")
APPLY_LINES = ("terraform_data.one: Creating...\n", "Apply complete!\n")


def logs(client: TestClient, run_id: str, **params: Any) -> dict[str, Any]:
    resp = client.get(f"/api/v1/runs/{run_id}/logs", params=params)
    assert resp.status_code == 200, resp.text
    page: dict[str, Any] = resp.json()
    return page


def sse_events(text: str) -> list[tuple[str | None, str, Any]]:
    """(id, event, data) of every event in an SSE body (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields:
            events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events


def applied_run(admin: TestClient, agent: ScriptedAgent) -> str:
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply", auto_apply=True)
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    agent.log(job, *PLAN_LINES[:2])
    agent.log(job, PLAN_LINES[2])
    agent.finish(job, result=plan_result())
    agent.apply(run["id"], lines=APPLY_LINES)
    assert show(admin, run["id"])["stage"] == "applied"
    run_id: str = run["id"]
    return run_id


def test_pages_go_through_the_plan_then_the_apply(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    run_id = applied_run(admin, agent)
    page = logs(reader, run_id)
    assert [(i["cursor"], i["phase"], i["text"]) for i in page["items"]] == [
        ("plan:1", "plan", PLAN_LINES[0]),
        ("plan:2", "plan", PLAN_LINES[1]),
        ("plan:3", "plan", PLAN_LINES[2]),
        ("apply:1", "apply", APPLY_LINES[0]),
        ("apply:2", "apply", APPLY_LINES[1]),
    ]
    assert (page["last_cursor"], page["more"], page["done"], page["stage"]) == (
        "apply:2",
        False,
        True,
        "applied",
    )

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = logs(reader, run_id, limit=2, **({"after": after} if after else {}))
        seen += [i["cursor"] for i in page["items"]]
        after, pages = page["last_cursor"], pages + 1
        if not page["more"]:
            break
        assert page["done"] is False  # not done while lines remain
    assert seen == ["plan:1", "plan:2", "plan:3", "apply:1", "apply:2"] and pages == 3
    assert [i["cursor"] for i in logs(reader, run_id, after="plan:3")["items"]] == ["apply:1", "apply:2"]
    end = logs(reader, run_id, after="apply:2")
    assert end["items"] == [] and end["last_cursor"] == "apply:2" and end["done"] is True


def test_an_errored_run_ends_with_its_error_and_bad_cursors_are_refused(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan")
    waiting = logs(reader, run["id"])
    assert waiting["items"] == [] and waiting["done"] is False and waiting["last_cursor"] == "plan:0"
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    agent.log(job, "Initializing...\n")
    partial = logs(reader, run["id"])
    assert [i["cursor"] for i in partial["items"]] == ["plan:1"] and partial["done"] is False
    agent.finish(job, "failed", error="Error: Missing required argument")
    page = logs(reader, run["id"])
    assert [(i["cursor"], i["phase"]) for i in page["items"]] == [("plan:1", "plan"), ("run:1", "run")]
    assert page["items"][-1]["text"] == "run #1 errored: Error: Missing required argument\n"
    assert page["done"] is True and page["last_cursor"] == "run:1"
    assert [i["cursor"] for i in logs(reader, run["id"], after="plan:1")["items"]] == ["run:1"]
    assert logs(reader, run["id"], after="run:1")["items"] == []

    for bad in ("bogus", "plan:", "plan:x", "apply:-1", "job:1"):
        resp = reader.get(f"/api/v1/runs/{run['id']}/logs", params={"after": bad})
        assert resp.status_code == 400, (bad, resp.text)
        assert "cursor" in resp.json()["error"]["message"]
    for params in ({"limit": 0}, {"limit": 5001}, {"follow": "maybe"}):
        assert reader.get(f"/api/v1/runs/{run['id']}/logs", params=params).status_code == 422, params
    assert (
        reader.get(f"/api/v1/runs/{run['id']}/logs", params={"follow": "true", "after": "x"}).status_code
        == 400
    )
    assert reader.get(f"/api/v1/runs/{uuid.uuid4()}/logs").status_code == 404
    assert reader.get(f"/api/v1/runs/{uuid.uuid4()}/logs", params={"follow": "true"}).status_code == 404


def test_follow_streams_a_finished_run_and_resumes_after_the_last_event_id(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    run_id = applied_run(admin, agent)
    with reader.stream("GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = "".join(resp.iter_text())
    events = sse_events(body)
    assert events[0] == (None, "stage", {"stage": "applied"})
    assert [(i, e, d["text"]) for i, e, d in events[1:-1]] == [
        ("plan:1", "log", PLAN_LINES[0]),
        ("plan:2", "log", PLAN_LINES[1]),
        ("plan:3", "log", PLAN_LINES[2]),
        ("apply:1", "log", APPLY_LINES[0]),
        ("apply:2", "log", APPLY_LINES[1]),
    ]
    assert events[1][2]["phase"] == "plan" and events[-2][2]["phase"] == "apply"
    assert events[-1] == (None, "end", {"stage": "applied"})

    with reader.stream(
        "GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true"}, headers={"Last-Event-ID": "plan:3"}
    ) as resp:
        resumed = sse_events("".join(resp.iter_text()))
    assert [i for i, e, _ in resumed if e == "log"] == ["apply:1", "apply:2"]
    with reader.stream(
        "GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true", "after": "apply:1"}
    ) as resp:
        resumed = sse_events("".join(resp.iter_text()))
    assert [i for i, e, _ in resumed if e == "log"] == ["apply:2"]


def test_follow_streams_a_live_plan_until_it_waits_for_confirmation(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan")
    job = agent.claim("terraform.plan", run["id"])
    received: list[str] = []

    def follow() -> None:
        client = TestClient(reader.app, headers=dict(reader.headers))
        with client.stream("GET", f"/api/v1/runs/{run['id']}/logs", params={"follow": "true"}) as resp:
            for chunk in resp.iter_text():
                received.append(chunk)

    reader_thread = threading.Thread(target=follow, daemon=True)
    reader_thread.start()
    deadline = time.monotonic() + 20
    while not any("event: stage" in c for c in received) and time.monotonic() < deadline:
        time.sleep(0.05)
    agent.start(job)
    agent.log(job, "line one\n")
    agent.log(job, "line two\n")
    agent.finish(job, result=plan_result())
    reader_thread.join(timeout=20)
    assert not reader_thread.is_alive(), "the stream did not end when the run was planned"
    events = sse_events("".join(received))
    assert events[0] == (None, "stage", {"stage": "pending"})
    assert [(i, d["text"]) for i, e, d in events if e == "log"] == [
        ("plan:1", "line one\n"),
        ("plan:2", "line two\n"),
    ]
    assert (None, "stage", {"stage": "planned"}) in events
    assert events[-1] == (None, "end", {"stage": "planned"})
