"""The `conflux_config` data source: a config looked up by its address, with its stable content.

Read-only and HTTP-only, like the resources: it lets a configuration use what another team published
(the id to attach releases to, the latest and stable version numbers, the stable content).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tf import types as t
from tf.iface import DataSource, ReadDataContext
from tf.schema import Attribute, Schema

from xcloudflow.provider.client import ConfigAddress, ConfluxApiError
from xcloudflow.provider.resources import ADDRESS_FIELDS, report

if TYPE_CHECKING:
    from xcloudflow.provider.provider import ConfluxProvider


class ConfigDataSource(DataSource):  # type: ignore[misc]
    def __init__(self, provider: ConfluxProvider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "config"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=1,
            description="An existing Conflux config, found by tenant/application/environment/name.",
            attributes=[
                *(Attribute(field, t.String(), required=True) for field in ADDRESS_FIELDS),
                Attribute("id", t.String(), computed=True, description="The config's UUID."),
                Attribute("format", t.String(), computed=True),
                Attribute("schema", t.String(), computed=True),
                Attribute(
                    "latest_version", t.Number(), computed=True, description="Null before any publish."
                ),
                Attribute(
                    "stable_version", t.Number(), computed=True, description="Null when nothing is stable."
                ),
                Attribute("stable_version_id", t.String(), computed=True),
                Attribute("content", t.String(), computed=True, description="The stable version's content."),
            ],
        )

    def read(self, ctx: ReadDataContext, config: dict[str, Any]) -> dict[str, Any] | None:
        client = self.provider.client
        if client is None:
            ctx.diagnostics.add_error("The conflux provider is not configured", "")
            return None
        address = ConfigAddress(*(str(config[field]) for field in ADDRESS_FIELDS))
        try:
            out = client.get_config(address)
            if out is None:
                ctx.diagnostics.add_error(
                    f"No config {address}", "Check the four address parts (case matters)."
                )
                return None
            stable = out.get("stable")
            version = client.version(address, int(stable["number"])) if stable else None
        except ConfluxApiError as exc:
            report(ctx.diagnostics, f"Reading config {address}", exc)
            return None
        return {
            "tenant": address.tenant,
            "application": address.application,
            "environment": address.environment,
            "name": address.name,
            "id": str(out["id"]),
            "format": out["format"],
            "schema": out.get("schema"),
            "latest_version": out.get("latest_version"),
            "stable_version": int(stable["number"]) if stable else None,
            "stable_version_id": str(stable["id"]) if stable else None,
            "content": version.get("content") if version else None,
        }
