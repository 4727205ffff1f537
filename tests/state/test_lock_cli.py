"""`xcf state locks` and the `locked_for` column of `xcf state list`: a lock's holder and age."""

from __future__ import annotations

import json

import httpx

from tests.cli.test_cli import xcf
from tests.conftest import ADMIN_TOKEN
from tests.factories import lock_info


def test_locks_are_listed_with_their_age(live_server: str) -> None:
    info = lock_info(who="alice@laptop")
    resp = httpx.request(
        "LOCK", live_server + "/terraform/state/net/prod", json=info, auth=("x", ADMIN_TOKEN), timeout=30
    )
    assert resp.status_code == 200, resp.text
    code, out = xcf(live_server, "state", "locks", "-o", "json")
    assert code == 0, out
    [lock] = json.loads(out)
    assert (lock["project"], lock["stack"], lock["ID"], lock["Who"]) == (
        "net",
        "prod",
        info["ID"],
        "alice@laptop",
    )
    assert lock["age"].endswith("s") and lock["age_seconds"] >= 0
    code, out = xcf(live_server, "state", "locks")
    assert code == 0 and "terraform/net/prod" in out and "alice" in out and "age" in out
    code, out = xcf(live_server, "state", "list", "-o", "json")
    assert code == 0 and json.loads(out)[0]["locked_for"].endswith("s")
