"""The HTTP edge: authentication before any body is read, body caps counted while streaming, values no
database can hold, rate limits and the brute-force block. Each attack gets a clear 4xx, costs bounded
memory (peak RSS of this process, where the server runs) and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import ADMIN_TOKEN, make_user_token, serve_app
from tests.rss import MiB, peak_rss, reset_peak_rss
from tests.server.edge_helpers import json_list_chunks, send_chunked
from xcloudflow.audit.models import AuditLog
from xcloudflow.db import Database
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ATTACK_BYTES = 40 * MiB
STATE = '{"version": 4, "serial": 1, "lineage": "l", "outputs": {}, "resources": []}'


def users(admin: TestClient) -> list[str]:
    return sorted(u["name"] for u in admin.get("/api/v1/users").json())


def flood(live: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """POST ATTACK_BYTES of JSON `[{},...]` to `path`, chunked: the status and the peak RSS growth."""
    rss = reset_peak_rss()
    status = send_chunked(
        live, "POST", path, {"Content-Type": "application/json", **headers}, json_list_chunks(ATTACK_BYTES)
    )
    return status, peak_rss() - rss


@pytest.fixture
def live(settings: Settings, db: Database) -> Iterator[str]:
    base, stop = serve_app(create_app(settings, maintenance=False))
    yield base
    stop()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer xcf_not_a_token"}, {"Authorization": "Basic eDp4Y2Zfbm90X2FfdG9rZW4="}],
    ids=["no-token", "bad-bearer", "bad-basic"],
)
def test_a_large_body_without_valid_credentials_is_refused_before_it_is_read(
    live: str, admin: TestClient, headers: dict[str, str]
) -> None:
    before = users(admin)
    status, grown = flood(live, "/api/v1/users", headers)
    print(f"40 MiB [{{}},...] {headers or 'without a token'}: {status}, peak RSS +{grown / MiB:.0f} MiB")
    assert status == 401
    # The old code parsed all 40 MB into Python objects first: +1.1 GB.
    assert grown < 100 * MiB, f"peak RSS grew {grown / MiB:.0f} MiB"
    assert users(admin) == before


def test_the_webhook_needs_its_signature_header_before_its_body(live: str) -> None:
    status, grown = flood(live, "/api/v1/gitops/webhook/app", {})
    assert status == 401
    assert grown < 100 * MiB


def test_a_large_body_with_a_valid_token_stops_at_the_route_cap(live: str, admin: TestClient) -> None:
    before = users(admin)
    status, grown = flood(live, "/api/v1/users", ADMIN)
    print(f"40 MiB [{{}},...] with the admin token: {status}, peak RSS +{grown / MiB:.0f} MiB")
    assert status == 413
    assert grown < 100 * MiB
    assert users(admin) == before


def test_content_length_over_the_cap_is_413_before_the_body(admin: TestClient) -> None:
    body = b'{"name": "' + b"x" * (2 * MiB) + b'", "role": "reader"}'
    resp = admin.post("/api/v1/users", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert error["code"] == "too_large" and "XCF_HTTP_MAX_BODY_BYTES" in error["message"]
    assert "x" * 10 not in str(users(admin))


def test_chunked_body_over_the_cap_is_413(admin: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 64 * 1024

    resp = admin.post("/api/v1/users", content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"


def test_routes_with_larger_caps_keep_them(settings: Settings, admin: TestClient) -> None:
    # Terraform state is capped by XCF_STATE_MAX_BYTES (2 MiB in the tests), not by the 1 MiB default.
    padding = "x" * (3 * MiB // 2)
    state = (
        f'{{"version": 4, "serial": 1, "lineage": "l", "outputs": {{}}, "resources": [], "pad": "{padding}"}}'
    )
    assert admin.post("/terraform/state/p/big", content=state).status_code == 200
    too_big = state.replace(padding, padding * 2)
    resp = admin.post("/terraform/state/p/big", content=too_big)
    assert resp.status_code == 413 and "XCF_STATE_MAX_BYTES" in resp.json()["error"]["message"]
    assert settings.http_max_body_bytes < len(state) < settings.state_max_bytes


def test_content_length_that_is_not_a_number_is_400(admin: TestClient) -> None:
    resp = admin.post(
        "/api/v1/users", content=b"{}", headers={"Content-Length": "x", "Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 422)


# ---------------------------------------------------------------- values no database can hold


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/stacks?project=a%00b", "query.project"),
        ("/api/v1/stacks?a%00=1", "query.a\\u0000"),
        ("/api/v1/secrets/a%00b", "path"),
        ("/api/v1/inventory/resources?q=%00", "query.q"),
    ],
)
def test_nul_in_the_path_or_query_is_422_naming_it(admin: TestClient, path: str, field: str) -> None:
    resp = admin.get(path)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/users", '{"name": "a\\u0000b", "role": "reader"}', "body.name"),
        ("PUT", "/api/v1/secrets/s", '{"data": {"k": "\\ud800"}}', "body.data.k"),
        ("PUT", "/api/v1/secrets/s", '{"data": {"\\udfff": "v"}}', "body.data.\\udfff"),
        ("PUT", "/api/v1/secrets/s", '{"data": {"k": "a\\u0000"}}', "body.data.k"),
        ("PUT", "/api/v1/workspaces/p/w/vars/terraform/k", '{"value": "\\ud83d"}', "body.value"),
    ],
)
def test_nul_and_lone_surrogates_in_json_are_422_naming_the_field(
    admin: TestClient, method: str, path: str, body: str, field: str
) -> None:
    resp = admin.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == field
    assert admin.get("/api/v1/secrets").json() == []


def test_escapes_that_are_fine_stay_fine(admin: TestClient) -> None:
    # a surrogate pair is one character; an escaped backslash before u0000 is text, not a NUL
    resp = admin.put(
        "/api/v1/secrets/s",
        content='{"data": {"k": "\\ud83d\\ude00 \\\\u0000"}}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code in (200, 201), resp.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workspaces/p/w/code-versions/2441483592",
        "/api/v1/stacks/terraform/p/w/versions/9223372036854775808",
        "/api/v1/stacks/terraform/p/w/versions/0",
        "/api/v1/stacks/terraform/p/w/diff?from=1&to=99999999999999999999",
    ],
)
def test_integers_beyond_the_column_are_422(admin: TestClient, path: str) -> None:
    # the workspace and its stack exist: the number would reach the database
    assert admin.post("/api/v1/workspaces", json={"project": "p", "name": "w"}).status_code == 201
    assert admin.post("/terraform/state/p/w", content=STATE).status_code == 200
    resp = admin.get(path)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"].startswith(("path.", "query."))


# ---------------------------------------------------------------- rate limits and brute force


def _app(settings: Settings, **limits: float) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update=limits), maintenance=False), raise_server_exceptions=False
    )


def test_rate_limit_per_token(settings: Settings, db: Database, admin: TestClient) -> None:
    other = make_user_token(admin, "olga", "reader")
    with _app(settings, rate_limit_token_per_second=0.01, rate_limit_token_burst=3) as client:
        assert [client.get("/api/v1/stacks", headers=ADMIN).status_code for _ in range(3)] == [200] * 3
        limited = client.get("/api/v1/stacks", headers=ADMIN)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "XCF_RATE_LIMIT_TOKEN_PER_SECOND" in limited.json()["error"]["message"]
        # the same token as the basic-auth password (Terraform's backend) is the same bucket
        assert client.get("/api/v1/stacks", auth=("terraform", ADMIN_TOKEN)).status_code == 429
        # agents' and jobs' tokens speak the agent protocol, whose volume follows the jobs: not limited
        agent_token = {"Authorization": "Bearer xcfa_not-a-real-one"}
        assert {
            client.post("/api/agent/v1/heartbeat", headers=agent_token, json={}).status_code for _ in range(5)
        } == {401}
        # another token is not limited by the first one's use
        assert client.get("/api/v1/stacks", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_rate_limit_per_address(settings: Settings, db: Database) -> None:
    with _app(settings, rate_limit_address_per_second=0.01, rate_limit_address_burst=2) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 200
        limited = client.get("/healthz")
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        # requests with credentials are limited per token, not per address: a reverse proxy or the
        # agents on the server's host do not share one budget with anonymous callers
        assert client.get("/api/v1/stacks", headers=ADMIN).status_code == 200
        assert client.get("/healthz", headers=ADMIN).status_code == 200


def test_bad_tokens_block_the_address_for_a_while(
    settings: Settings, db: Database, admin: TestClient
) -> None:
    with _app(settings, auth_failure_limit=5, auth_block_seconds=600) as client:
        bad = {"Authorization": "Bearer xcf_guess"}
        # no token at all is not guessing: it does not count
        assert {client.get("/api/v1/stacks").status_code for _ in range(10)} == {401}
        assert [client.get("/api/v1/stacks", headers=bad).status_code for _ in range(5)] == [401] * 5
        blocked = client.get("/api/v1/stacks", headers=ADMIN)  # even a good token, from that address
        assert blocked.status_code == 429
        assert 590 <= int(blocked.headers["Retry-After"]) <= 600
        assert "bad credentials" in blocked.json()["error"]["message"]
    with db.read() as session:  # not any organization's: the address has none
        entries = session.scalars(select(AuditLog).where(AuditLog.action == "auth.blocked")).all()
        assert [(e.result, e.client_ip) for e in entries] == [("denied", "testclient")]


def test_the_default_limits_leave_an_ordinary_client_alone(live: str) -> None:
    # the suite's own clients (this TestClient, the Terraform CLI, agents) run under the defaults
    with httpx.Client(base_url=live, headers=ADMIN) as client:
        assert {client.get("/api/v1/stacks").status_code for _ in range(200)} == {200}


def test_a_drift_interval_beyond_a_timedelta_is_refused(admin: TestClient) -> None:
    # found by schemathesis: an OverflowError (500) in timedelta(minutes=...)
    body = {"project": "p", "name": "w", "drift_interval_minutes": 92309032425157}
    resp = admin.post("/api/v1/workspaces", json=body)
    assert resp.status_code == 400 and "drift_interval_minutes" in resp.json()["error"]["message"]
    assert admin.get("/api/v1/workspaces").json()["items"] == []
