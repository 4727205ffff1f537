"""The provider's resources `conflux_config` and `conflux_release` (the policy is in policy.py).

Exactly the seed's schemas (section 1a), plus the computed attributes other resources reference
(`id`, `version_id`, `version`). Every `read` asks the server, so a change made through the API or the
CLI (a version made stable by hand, a rule edited, a config deleted) shows as drift in `terraform
plan`. Read keeps the state's own spelling of a value the server holds in an equivalent form (the
same JSON Schema re-serialized, the same rules in another order) so that nothing flaps.

Releases are immutable history: `content` or `description` changing replaces the resource (a new
version is published), destroying one deletes nothing on the server, and creation goes through the
atomic publish API with an idempotency key, so an apply that is retried after a timeout does not
publish twice. These classes must never reach the database or services: everything goes over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from tf import types as t
from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    ReadContext,
    Resource,
    UpdateContext,
)
from tf.schema import Attribute, Block, Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from xcloudflow.provider.blocks import ListNestedBlock, SingleNestedBlock
from xcloudflow.provider.client import ConfigAddress, ConfluxApiError, ConfluxClient

if TYPE_CHECKING:
    from xcloudflow.provider.provider import ConfluxProvider

# The server is the authority on these; they are repeated here only to fail at `terraform validate`
# instead of at apply. (The provider may not import the server's modules: it talks HTTP only.)
FORMATS = ("json", "yaml", "toml", "properties", "ini", "text")
STRATEGIES = ("AND", "OR")
RETENTION_TYPES = ("count", "days")
ADDRESS_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ADDRESS_FIELDS = ("tenant", "application", "environment", "name")
REPUBLISH_LIMIT = 5


def known(value: Any) -> bool:
    return value is not None and value is not Unknown


def report(diags: Diagnostics, action: str, exc: ConfluxApiError) -> None:
    """A server refusal as a Terraform error naming the call, the status and the server's reason."""
    detail = exc.message
    path = exc.details.get("path") if isinstance(exc.details, dict) else None
    if path:
        detail += f" (at {path})"
    status = f"HTTP {exc.status}" if exc.status else "no answer"
    diags.add_error(f"{action}: {status}", f"{exc.method} {exc.path}: {detail}")


def _json_equal(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return False


def _bool(value: Any) -> bool:
    return bool(value) if known(value) else False


class ConfluxResource(Resource):  # type: ignore[misc]
    """Shared plumbing: the configured client, and the config a resource hangs on."""

    def __init__(self, provider: ConfluxProvider) -> None:
        self.provider = provider

    def client(self, diags: Diagnostics) -> ConfluxClient | None:
        client = self.provider.client
        if client is None:
            diags.add_error(
                "The conflux provider is not configured",
                "Set server_endpoint and auth_token in the provider block (or XCF_SERVER and XCF_TOKEN).",
            )
        return client

    def config_for_import(
        self, ctx: ImportContext, id: str, *, what: str, hint: str
    ) -> dict[str, Any] | None:
        """The config an import names by its UUID; None (with the error said) when there is none."""
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        try:
            config = client.config_by_id(id.strip())
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Importing {what} {id}", exc)
            return None
        if config is None:
            ctx.diagnostics.add_error(f"No config with id {id!r}", hint)
        return config


# --------------------------------------------------------------------------- conflux_config


def _retention_in(block: dict[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    rules = [{"type": r["type"], "keep": int(r["keep"])} for r in block.get("rules") or []]
    return {"strategy": block["strategy"], "rules": rules}


def _retention_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b

    def norm(r: dict[str, Any]) -> tuple[str, int]:
        return (str(r["type"]), int(r["keep"]))

    return a.get("strategy") == b.get("strategy") and sorted(map(norm, a.get("rules") or [])) == sorted(
        map(norm, b.get("rules") or [])
    )


def config_state(out: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """Terraform state of a ConfigOut, keeping `current`'s spelling of equivalent values."""
    current = current or {}
    schema = out.get("schema")
    if _json_equal(current.get("schema"), schema):
        schema = current.get("schema")
    retention = out.get("retention")
    block = (
        {
            "strategy": retention.get("strategy"),
            "rules": [{"type": r.get("type"), "keep": r.get("keep")} for r in retention.get("rules") or []],
        }
        if retention
        else None
    )
    if _retention_equal(_retention_in(current.get("retention_policy")), block):
        block = current.get("retention_policy")
    return {
        "id": str(out["id"]),
        "tenant": out["tenant"],
        "application": out["application"],
        "environment": out["environment"],
        "name": out["name"],
        "format": out["format"],
        "schema": schema,
        "retention_policy": block,
    }


class ConfigResource(ConfluxResource):
    @classmethod
    def get_name(cls) -> str:
        return "config"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=1,
            description="A Conflux config: its address, content format, optional JSON Schema and retention.",
            attributes=[
                Attribute("id", t.String(), computed=True, description="The config's UUID."),
                Attribute("tenant", t.String(), required=True, requires_replace=True),
                Attribute("application", t.String(), required=True, requires_replace=True),
                Attribute("environment", t.String(), required=True, requires_replace=True),
                Attribute("name", t.String(), required=True, requires_replace=True),
                Attribute(
                    "format",
                    t.String(),
                    required=True,
                    description="One of " + ", ".join(FORMATS) + ". Cannot change once versions exist.",
                ),
                Attribute(
                    "schema",
                    t.String(),
                    optional=True,
                    description="A JSON Schema (Draft 2020-12) every published version must satisfy.",
                ),
            ],
            block_types=[
                SingleNestedBlock(
                    "retention_policy",
                    Block(
                        attributes=[
                            Attribute("strategy", t.String(), required=True, description="AND or OR."),
                        ],
                        block_types=[
                            ListNestedBlock(
                                "rules",
                                Block(
                                    attributes=[
                                        Attribute(
                                            "type", t.String(), required=True, description="count or days."
                                        ),
                                        Attribute("keep", t.Number(), required=True),
                                    ]
                                ),
                            )
                        ],
                    ),
                )
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: dict[str, Any]) -> None:
        super().validate(diags, type_name, config)
        for field in ADDRESS_FIELDS:
            value = config.get(field)
            if known(value) and not ADDRESS_PART.match(str(value)):
                diags.add_error(
                    f"Invalid {field} {value!r}",
                    "Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
                    path=[field],
                )
        fmt = config.get("format")
        if known(fmt) and fmt not in FORMATS:
            diags.add_error(
                f"Unknown format {fmt!r}", "Use one of " + ", ".join(FORMATS) + ".", path=["format"]
            )
        retention: dict[str, Any] | None = config.get("retention_policy")
        if retention is not None and known(retention):
            strategy = retention.get("strategy")
            if known(strategy) and strategy not in STRATEGIES:
                diags.add_error(
                    f"Unknown retention strategy {strategy!r}",
                    "Use AND (delete only what every rule would delete) or OR (what any rule would).",
                    path=["retention_policy", "strategy"],
                )
            for i, rule in enumerate(retention.get("rules") or []):
                kind, keep = rule.get("type"), rule.get("keep")
                if known(kind) and kind not in RETENTION_TYPES:
                    diags.add_error(
                        f"Unknown retention rule type {kind!r}",
                        "Use count (keep the N newest versions) or days (keep versions younger than N days).",
                        path=["retention_policy", "rules", (i,), "type"],
                    )
                if known(keep) and (int(keep) != keep or keep < 1):
                    diags.add_error(
                        f"Invalid retention keep {keep!r}",
                        "keep is a whole number of versions or days, at least 1.",
                        path=["retention_policy", "rules", (i,), "keep"],
                    )

    @staticmethod
    def _address(state: dict[str, Any]) -> ConfigAddress:
        return ConfigAddress.of(state)

    @staticmethod
    def _body(planned: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": planned["format"],
            "schema": planned.get("schema"),
            "retention": _retention_in(planned.get("retention_policy")),
        }
        if existing is not None and existing.get("description"):
            body["description"] = existing["description"]  # set by someone else: not Terraform's to clear
        return body

    def create(self, ctx: CreateContext, planned: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        address = self._address(planned)
        try:
            existing = client.get_config(address)
            if existing is not None:
                ctx.diagnostics.add_error(
                    f"Config {address} already exists",
                    f"It has id {existing['id']}. Bring it under Terraform with "
                    f"`terraform import <resource address> {existing['id']}` instead of creating it.",
                )
                return None
            out = client.put_config(address, self._body(planned, None))
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Creating config {address}", exc)
            return None
        return config_state(out, planned)

    def read(self, ctx: ReadContext, current: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        try:
            out = client.config_by_id(str(current["id"]))
        except ConfluxApiError as exc:
            report(ctx.diagnostics, "Reading config", exc)
            return current
        return None if out is None else config_state(out, current)

    def update(
        self, ctx: UpdateContext, current: dict[str, Any], planned: dict[str, Any]
    ) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        address = self._address(planned)
        try:
            existing = client.get_config(address)
            out = client.put_config(address, self._body(planned, existing))
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Updating config {address}", exc)
            return current
        return config_state(out, planned)

    def delete(self, ctx: DeleteContext, current: dict[str, Any]) -> None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return
        address = self._address(current)
        try:
            client.delete_config(address)
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Deleting config {address}", exc)

    def import_(self, ctx: ImportContext, id: str) -> dict[str, Any] | None:
        out = self.config_for_import(
            ctx, id, what="config", hint="Import a config by its UUID (xcf conflux get)."
        )
        return config_state(out, None) if out is not None else None


# --------------------------------------------------------------------------- conflux_release


def idempotency_key(config_id: str, content: str, description: str | None, is_stable: bool) -> str:
    """sha256(config_id + content + description + is_stable): the same release publishes once."""
    parts = (config_id, content, description or "", "true" if is_stable else "false")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _stable_flag(server_stable: bool, current: Any) -> bool | None:
    """is_stable as state: True when the server says so; otherwise false, or null if it was unset."""
    if server_stable:
        return True
    return None if current is None else False


def parse_release_id(text: str) -> tuple[str, int]:
    config_id, sep, number = text.strip().rpartition("/")
    if not sep or not config_id or not number.isdigit():
        raise ValueError(f"{text!r} is not <config_id>/<version number>")
    return config_id, int(number)


class ReleaseResource(ConfluxResource):
    @classmethod
    def get_name(cls) -> str:
        return "release"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=1,
            description=(
                "A published version of a config. Changing content or description publishes a new version; "
                "destroying a release deletes nothing (versions are immutable history)."
            ),
            attributes=[
                Attribute("config_id", t.String(), required=True, requires_replace=True),
                Attribute("content", t.String(), required=True, requires_replace=True),
                Attribute("description", t.String(), optional=True, requires_replace=True),
                Attribute(
                    "is_stable",
                    t.Bool(),
                    optional=True,
                    description="Make this version the stable one (default false).",
                ),
                Attribute("version_id", t.String(), computed=True, description="The version's UUID."),
                Attribute(
                    "version", t.Number(), computed=True, description="The version's number (1, 2, ...)."
                ),
            ],
        )

    def _config(self, client: ConfluxClient, config_id: str) -> tuple[ConfigAddress, dict[str, Any]] | None:
        out = client.config_by_id(config_id)
        return None if out is None else (ConfigAddress.of(out), out)

    def create(self, ctx: CreateContext, planned: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        config_id, content = str(planned["config_id"]), str(planned["content"])
        description, is_stable = planned.get("description"), _bool(planned.get("is_stable"))
        body: dict[str, Any] = {
            "content": content,
            "is_stable": is_stable,
            "idempotency_key": idempotency_key(config_id, content, description, is_stable),
            "source": "terraform",
        }
        if description is not None:
            body["description"] = description
        try:
            found = self._config(client, config_id)
            if found is None:
                ctx.diagnostics.add_error(f"No config with id {config_id!r}", "", path=["config_id"])
                return None
            address, _ = found
            version = self._publish(client, address, body)
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Publishing a version of config {config_id}", exc)
            return None
        return {**planned, "version_id": str(version["id"]), "version": int(version["number"])}

    @staticmethod
    def _publish(client: ConfluxClient, address: ConfigAddress, body: dict[str, Any]) -> dict[str, Any]:
        """Publish; a replay answers the first result, whose version may be gone or no longer stable."""
        for _ in range(REPUBLISH_LIMIT):
            out = client.publish(address, body)
            version: dict[str, Any] = out["version"]
            if not out.get("replayed"):
                return version
            now = client.version(address, int(version["number"]))
            if now is None:
                # Retention deleted that version: publish again, under a key derived from the old one
                # so that this step is itself repeatable.
                again = f"{body['idempotency_key']}:{version['id']}"
                body = {**body, "idempotency_key": hashlib.sha256(again.encode()).hexdigest()}
                continue
            if body["is_stable"] and not now.get("stable"):
                client.make_stable(address, version_id=str(version["id"]), note="terraform")
            return version
        raise ConfluxApiError("POST", address.path() + "/publish", 409, "replayed versions keep disappearing")

    def read(self, ctx: ReadContext, current: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        try:
            found = self._config(client, str(current["config_id"]))
            if found is None:
                return None
            version = client.version(found[0], int(current["version"]))
        except ConfluxApiError as exc:
            report(ctx.diagnostics, "Reading release", exc)
            return current
        if version is None or str(version["id"]) != str(current.get("version_id")):
            return None  # removed by retention or with its config: plan publishes it again
        return {**current, "is_stable": _stable_flag(bool(version.get("stable")), current.get("is_stable"))}

    def update(
        self, ctx: UpdateContext, current: dict[str, Any], planned: dict[str, Any]
    ) -> dict[str, Any] | None:
        # Only is_stable can change in place: everything else replaces the resource.
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        try:
            found = self._config(client, str(planned["config_id"]))
            if found is None:
                ctx.diagnostics.add_error(
                    f"No config with id {planned['config_id']!r}", "", path=["config_id"]
                )
                return current
            address, _ = found
            if _bool(planned.get("is_stable")):
                client.make_stable(address, version_id=str(planned["version_id"]), note="terraform")
            else:
                version = client.version(address, int(planned["version"]))
                if version is not None and version.get("stable"):
                    ctx.diagnostics.add_warning(
                        f"Version {planned['version']} of {address} is still the stable version",
                        "A stable version cannot be un-released; it stays stable until another version is "
                        "made stable (another conflux_release with is_stable = true, or xcf conflux rollback).",
                    )
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Releasing version {planned.get('version')}", exc)
            return current
        return planned

    def delete(self, ctx: DeleteContext, current: dict[str, Any]) -> None:
        return None  # versions are immutable history: forgetting the release deletes nothing

    def import_(self, ctx: ImportContext, id: str) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        try:
            config_id, number = parse_release_id(id)
        except ValueError as exc:
            ctx.diagnostics.add_error("Invalid release import id", f"{exc}, e.g. 0b5e.../3")
            return None
        try:
            found = self._config(client, config_id)
            version = None if found is None else client.version(found[0], number)
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Importing release {id}", exc)
            return None
        if version is None:
            ctx.diagnostics.add_error(f"No version {number} of config {config_id!r}", "")
            return None
        return {
            "config_id": config_id,
            "content": version.get("content") or "",
            "description": version.get("description") or None,
            "is_stable": _stable_flag(bool(version.get("stable")), None),
            "version_id": str(version["id"]),
            "version": int(version["number"]),
        }
