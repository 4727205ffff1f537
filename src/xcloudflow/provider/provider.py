"""The `conflux` provider itself: its configuration and the resource types it serves.

Provider block: `server_endpoint` and `auth_token` (sensitive), each falling back to XCF_SERVER and
XCF_TOKEN like the `xcf` CLI, so CI can keep the token out of the configuration. Configuring builds
the one HTTP client every resource of this plugin process uses (Terraform calls resources from
several threads; httpx's client is thread-safe).
"""

from __future__ import annotations

import os
from typing import Any

from tf import types as t
from tf.iface import DataSource, Provider, Resource
from tf.schema import Attribute, Schema
from tf.utils import Diagnostics

from xcloudflow.provider import SOURCE
from xcloudflow.provider.client import DEFAULT_ENDPOINT, ConfluxClient
from xcloudflow.provider.data_sources import ConfigDataSource
from xcloudflow.provider.policy import ReleasePolicyResource
from xcloudflow.provider.resources import ConfigResource, ReleaseResource, known


class ConfluxProvider(Provider):  # type: ignore[misc]
    def __init__(self) -> None:
        self.client: ConfluxClient | None = None

    def get_model_prefix(self) -> str:
        return "conflux_"

    def full_name(self) -> str:
        return SOURCE

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            version=1,
            description="Manage XCloudFlow Conflux configs, releases and release policies.",
            attributes=[
                Attribute(
                    "server_endpoint",
                    t.String(),
                    optional=True,
                    description=f"The XCloudFlow server URL (default: XCF_SERVER, then {DEFAULT_ENDPOINT}).",
                ),
                Attribute(
                    "auth_token",
                    t.String(),
                    optional=True,
                    sensitive=True,
                    description="An API token with the writer role (default: XCF_TOKEN).",
                ),
            ],
        )

    def validate_config(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        endpoint = config.get("server_endpoint")
        if known(endpoint) and not str(endpoint).startswith(("http://", "https://")):
            diags.add_error(
                f"Invalid server_endpoint {endpoint!r}",
                "Use the server's http:// or https:// URL, e.g. https://xcf.example.com.",
                path=["server_endpoint"],
            )

    def configure_provider(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        endpoint = config.get("server_endpoint")
        token = config.get("auth_token")
        endpoint = str(endpoint) if known(endpoint) else os.environ.get("XCF_SERVER") or DEFAULT_ENDPOINT
        token = str(token) if known(token) else os.environ.get("XCF_TOKEN")
        if not token:
            diags.add_error(
                "No auth_token for the conflux provider",
                "Set auth_token in the provider block or XCF_TOKEN in Terraform's environment.",
                path=["auth_token"],
            )
            return
        if self.client is not None:
            self.client.close()
        self.client = ConfluxClient(endpoint, token)

    def get_data_sources(self) -> list[type[DataSource]]:
        return [ConfigDataSource]

    def get_resources(self) -> list[type[Resource]]:
        return [ConfigResource, ReleaseResource, ReleasePolicyResource]
