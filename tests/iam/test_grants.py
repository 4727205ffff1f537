"""Permissions granted beyond the role (memberships.grants, migration 0008): an admin gives a reader
`state:read` so its CI can plan against the raw state; audited; bad input stores nothing."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.cli.test_cli import xcf
from tests.factories import body, tf_state
from tests.state.test_backend_api import URL, post_state

SECRET = "the-raw-state-secret-42"


def test_an_admin_grants_a_reader_raw_state(
    admin: TestClient, reader: TestClient, writer: TestClient
) -> None:
    data = body(tf_state(resources={"db": SECRET}))
    assert post_state(admin, data).status_code == 200
    assert SECRET not in reader.get(URL).text
    # Only admins grant; a writer cannot give itself or others anything.
    refused = writer.put("/api/v1/users/rita/grants", json={"grants": ["state:read"]})
    assert refused.status_code == 403
    # Unknown permissions and unknown users store nothing.
    assert admin.put("/api/v1/users/rita/grants", json={"grants": ["state:everything"]}).status_code == 422
    assert admin.put("/api/v1/users/nobody/grants", json={"grants": ["state:read"]}).status_code == 404
    assert SECRET not in reader.get(URL).text

    granted = admin.put("/api/v1/users/rita/grants", json={"grants": ["state:read"]})
    assert granted.status_code == 200 and granted.json()["grants"] == ["state:read"]
    assert reader.get(URL).content == data
    assert reader.get("/api/v1/stacks/terraform/net/prod/versions/1/content").content == data
    # Grants are not roles: the reader still cannot write.
    assert post_state(reader, tf_state(serial=2)).status_code == 403
    users = {u["name"]: u for u in admin.get("/api/v1/users").json()}
    assert users["rita"]["grants"] == ["state:read"] and users["wendy"]["grants"] == []

    assert admin.put("/api/v1/users/rita/grants", json={"grants": []}).json()["grants"] == []
    assert SECRET not in reader.get(URL).text
    audit = admin.get("/api/v1/audit-logs", params={"action": "iam.user.grants"}).json()["items"]
    assert [(a["details"]["before"], a["details"]["after"]) for a in audit] == [
        (["state:read"], []),
        ([], ["state:read"]),
    ]


def test_the_cli_grants(live_server: str) -> None:
    assert xcf(live_server, "user", "create", "ci-bot", "--role", "reader")[0] == 0
    code, out = xcf(live_server, "user", "grant", "ci-bot", "state:read", "-o", "json")
    assert code == 0 and json.loads(out)["grants"] == ["state:read"], out
    code, out = xcf(live_server, "user", "list")
    assert code == 0 and "state:read" in out
    code, out = xcf(live_server, "user", "grant", "ci-bot", "-o", "json")
    assert code == 0 and json.loads(out)["grants"] == []
