"""Values equal to a secret are redacted though Terraform does not mark them (issue 11): within the
instance, across the state (other resources, sensitive outputs), with a minimum length so that short
values are not blanked everywhere; through the real consumer on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.inventory.test_service import current, tf
from xcloudflow.db import Database
from xcloudflow.inventory import redact
from xcloudflow.inventory.models import ResourceEvent
from xcloudflow.inventory.parsing import state_secrets

SALT = b"s" * 32
SECRET = "s3cret-db-password-4711"


def data(
    name: str, value: Any, sensitive: list[str] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "mode": "managed",
        "type": "terraform_data",
        "name": name,
        "provider": 'provider["terraform.io/builtin/terraform"]',
        "instances": [
            {
                "schema_version": 0,
                "attributes": {"id": f"id-{name}", "input": value, "output": value, **(extra or {})},
                "sensitive_attributes": [[{"type": "get_attr", "value": p}] for p in sensitive or []],
            }
        ],
    }


def test_a_copy_of_a_marked_value_is_redacted_in_the_instance() -> None:
    out = redact.redact(
        {"input": SECRET, "output": SECRET, "id": "x"}, salt=SALT, sensitive_paths=[["input"]]
    )
    assert out["input"] == out["output"] and out["output"].startswith("(sensitive:")
    assert out["id"] == "x"
    # Inside text (a connection string) a long secret is found too; the whole value is redacted.
    out = redact.redact(
        {"password": SECRET, "url": f"postgres://app:{SECRET}@db:5432/app", "host": "db"}, salt=SALT
    )
    assert out["url"].startswith("(sensitive:") and out["host"] == "db"
    # Numbers compare by their JSON text (a sensitive port).
    out = redact.redact({"port": 15432, "copy": "15432"}, salt=SALT, sensitive_paths=[["port"]])
    assert out["copy"].startswith("(sensitive:")


def test_short_secrets_are_matched_only_whole_and_flags_never() -> None:
    attrs = {"enabled": "true", "flag": True, "n": 1, "pin": "1234", "pin_copy": "1234", "text": "pin 1234"}
    out = redact.redact(attrs, salt=SALT, sensitive_paths=[["enabled"], ["n"], ["pin"]])
    assert out["flag"] is True  # a bool is never a secret to look for
    assert out["n"].startswith("(sensitive:")  # itself marked
    assert out["pin_copy"].startswith("(sensitive:")  # 4 characters: equality
    assert out["text"] == "pin 1234"  # shorter than MIN_CONTAINED_CHARS: not looked for inside text
    out = redact.redact({"a": "1", "b": "1"}, salt=SALT, sensitive_paths=[["a"]])
    assert out["b"] == "1"  # below MIN_EQUAL_CHARS


def test_a_dynamic_values_type_name_is_not_a_secret() -> None:
    attrs = {"input": {"value": SECRET, "type": "string"}, "output": {"value": SECRET, "type": "string"}}
    attrs["name"] = {"value": "plain", "type": "string"}
    out = redact.redact(attrs, salt=SALT, sensitive_paths=[["input"]])
    assert out["output"]["value"].startswith("(sensitive:") and out["output"]["type"] == "string"
    assert out["name"] == {"value": "plain", "type": "string"}


def test_state_secrets_cover_other_resources_and_sensitive_outputs() -> None:
    doc = tf(1, [data("s", SECRET, ["input"]), data("t", "other-value")])
    doc["outputs"] = {"pw": {"value": "output-only-secret", "type": "string", "sensitive": True}}
    known = state_secrets(doc)
    assert known.matches(SECRET) and known.matches("output-only-secret") and not known.matches("other-value")
    out = redact.redact({"copy": "output-only-secret", "x": "other-value"}, salt=SALT, known=known)
    assert out["copy"].startswith("(sensitive:") and out["x"] == "other-value"


def test_through_the_consumer(db: Database, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    # `t` carries the secret of `s` unmarked; `u` carries the value of a sensitive output.
    doc = tf(1, [data("s", SECRET, ["input"]), data("t", SECRET), data("u", "from-the-output-42")])
    doc["outputs"] = {"o": {"value": "from-the-output-42", "type": "string", "sensitive": True}}
    put_state(doc)
    consume()
    rows = current(db)
    for addr in ("terraform_data.s", "terraform_data.t", "terraform_data.u"):
        assert rows[addr].attrs["output"].startswith("(sensitive:"), addr
    with db.read() as session:
        blob = repr([e.patch_json for e in session.scalars(select(ResourceEvent))])
    blob += repr([r.attrs for r in rows.values()])
    assert SECRET not in blob and "from-the-output-42" not in blob
    # A value that becomes a secret elsewhere in the state: `v` is unchanged in version 2, but the
    # secret now marked in `w` equals its value, so its stored attributes are re-redacted.
    put_state(tf(2, [data("v", "becomes-secret-99"), data("w", "plain")]))
    consume()
    assert current(db)["terraform_data.v"].attrs["output"] == "becomes-secret-99"
    put_state(tf(3, [data("v", "becomes-secret-99"), data("w", "becomes-secret-99", ["input"])]))
    consume()
    assert current(db)["terraform_data.v"].attrs["output"].startswith("(sensitive:")
