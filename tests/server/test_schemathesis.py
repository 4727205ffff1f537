"""A bounded schemathesis run over the whole OpenAPI, in-process against the ASGI app with the admin
token: no operation answers 5xx, whatever schemathesis sends (valid and invalid data).

Bounded by XCF_SCHEMATHESIS_EXAMPLES examples per operation and generation mode (default 6), so it
stays a few minutes on two cores. The totals are printed (pytest -s) for the record.
"""

from __future__ import annotations

import os
from collections import Counter

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import ADMIN_TOKEN
from xcloudflow.db import Database
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

EXAMPLES = int(os.environ.get("XCF_SCHEMATHESIS_EXAMPLES", "6"))
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Code-version uploads are raw .tar.gz bodies: send whatever bytes schemathesis makes up.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")


# Path parameters that name things _seed made, for one of the passes over each operation.
KNOWN = {"tool": "terraform", "project": "p", "stack": "w", "name": "w", "tenant": "t", "version": 1}


def _seed(client: TestClient) -> None:
    state = '{"version": 4, "serial": 1, "lineage": "l", "outputs": {}, "resources": []}'
    assert client.post("/terraform/state/p/w", content=state).status_code == 200
    assert client.post("/api/v1/workspaces", json={"project": "p", "name": "w"}).status_code == 201
    assert client.put("/api/v1/secrets/w", json={"data": {"k": "v"}}).status_code == 201


def test_no_operation_answers_5xx(settings: Settings, db: Database) -> None:
    # The run sends hundreds of requests a second with one token, some with bad credentials: the
    # edge's rate limits and brute-force block would answer 429 instead of exercising the routes
    # (they have their own tests).
    settings = settings.model_copy(
        update={"rate_limit_token_per_second": 0, "rate_limit_address_per_second": 0, "auth_failure_limit": 0}
    )
    app = create_app(settings, maintenance=False)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    with TestClient(app, headers=AUTH) as client:
        _seed(client)
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            names = {p.name for p in operation.path_parameters}
            known = {k: v for k, v in KNOWN.items() if k in names}
            # the watch long-polls for as long as it is asked: do not wait for it
            query = {"timeout": 0.05} if operation.path.endswith("/watch") else None
            strategies = [operation.as_strategy(generation_mode=m, query=query) for m in GenerationMode]
            if known:  # also reach past the 404 of random names, into the routes' own logic
                strategies.append(operation.as_strategy(path_parameters=known, query=query))
            for strategy in strategies:

                @given(case=strategy)
                @hypothesis_settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def call(case: schemathesis.Case) -> None:
                    try:
                        response = case.call(headers=AUTH)
                        status, text = response.status_code, response.text[:200]
                    except Exception as exc:  # the in-process client re-raises what the app raised
                        status, text = 500, f"{exc.__class__.__name__}: {exc}"[:200]
                    statuses[status] += 1
                    if status >= 500:
                        failures.append(
                            f"{case.method} {case.operation.path} -> {status}: {text} "
                            f"(query={case.query!r} path={case.path_parameters!r} body={str(case.body)[:120]!r})"
                        )

                try:
                    call()
                except Unsatisfiable:  # e.g. no invalid data exists for an operation without inputs
                    continue
    failing_ops = {f.split(" ->")[0] for f in failures}
    print(
        f"\nschemathesis: {operations} operations, {sum(statuses.values())} cases, "
        f"{len(failures)} answers 5xx in {len(failing_ops)} operations; statuses {dict(sorted(statuses.items()))}"
    )
    for failure in failures[:80]:
        print("  ", failure)
    assert operations > 50
    assert not statuses[429], "the limits are off here: a 429 means the run tested nothing"
    assert not failures, f"{len(failures)} answers 5xx, first: {failures[:5]}"
