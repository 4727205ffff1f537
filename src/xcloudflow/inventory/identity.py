"""Stable resource identity and placement: stable_uid, cloud and region. Pure functions.

stable_uid (seed 000 section 6): the resource's global identifier when it has one (an ARN, a GCP
`self_link`, an Azure resource ID, a Kubernetes UID, a Pulumi id with its type), else a UUIDv5 of
provider + type + address + stack. A resource Terraform moved keeps its global id and so its uid.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from xcloudflow.inventory.parsing import ParsedResource

NAMESPACE = uuid.UUID("5b3c2f0e-6a53-4d8a-9d7e-3f1c8b2a9e11")

CLOUDS = {
    "aws": "aws",
    "awscc": "aws",
    "google": "gcp",
    "google-beta": "gcp",
    "gcp": "gcp",
    "azurerm": "azure",
    "azuread": "azure",
    "azure": "azure",
    "azure-native": "azure",
    "alicloud": "alibaba",
    "tencentcloud": "tencent",
    "huaweicloud": "huawei",
    "kubernetes": "kubernetes",
    "helm": "kubernetes",
    "digitalocean": "digitalocean",
    "oci": "oracle",
    "ibm": "ibm",
    "cloudflare": "cloudflare",
}
_AWS_AZ = re.compile(r"^([a-z]{2}(?:-gov)?-[a-z]+-\d)[a-z]$")
_GCP_ZONE = re.compile(r"^([a-z]+-[a-z]+\d)-[a-z]$")


def _k8s_uid(attrs: dict[str, Any]) -> str | None:
    meta = attrs.get("metadata")
    if isinstance(meta, list) and meta and isinstance(meta[0], dict):
        meta = meta[0]
    if isinstance(meta, dict) and isinstance(meta.get("uid"), str) and meta["uid"]:
        return f"k8s:{meta['uid']}"
    return None


def global_id(res: ParsedResource) -> str | None:
    attrs = res.attrs
    arn = attrs.get("arn")
    if isinstance(arn, str) and arn.startswith("arn:"):
        return arn
    link = attrs.get("self_link")
    if isinstance(link, str) and link.startswith("https://"):
        return link
    rid = attrs.get("id")
    if isinstance(rid, str) and rid.lower().startswith("/subscriptions/"):
        return rid
    k8s = _k8s_uid(attrs)
    if k8s:
        return k8s
    if res.kind in ("managed", "provider") and res.native_id and ":" in res.resource_type:  # Pulumi
        return f"{res.resource_type}::{res.native_id}"
    return None


def stable_uid(res: ParsedResource, *, tool: str, project: str, stack: str) -> tuple[uuid.UUID, str | None]:
    gid = global_id(res)
    if gid is not None:
        return uuid.uuid5(NAMESPACE, f"global|{gid}"), gid
    return uuid.uuid5(
        NAMESPACE, f"local|{res.provider}|{res.resource_type}|{res.addr}|{tool}/{project}/{stack}"
    ), None


def cloud_of(provider: str) -> str | None:
    return CLOUDS.get(provider.lower())


def region_of(res: ParsedResource) -> str | None:
    attrs = res.attrs
    for key in ("region", "location"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value.lower().replace(" ", "")
    arn = attrs.get("arn")
    if isinstance(arn, str) and arn.startswith("arn:"):
        parts = arn.split(":")
        if len(parts) > 3 and parts[3]:
            return parts[3]
    for key in ("availability_zone", "zone"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            for pattern in (_AWS_AZ, _GCP_ZONE):
                match = pattern.match(value)
                if match:
                    return match.group(1)
            return value
    return None


_REF_PATTERNS = [
    re.compile(r"^arn:[a-z0-9-]+:[a-z0-9-]+:"),
    re.compile(r"^/subscriptions/[0-9a-fA-F-]{36}/", re.IGNORECASE),
    re.compile(r"^https://www\.googleapis\.com/"),
    re.compile(r"^[a-z]{2,8}-[0-9a-f]{8,17}$"),  # aws ids: vpc-..., subnet-..., sg-..., i-...
    re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),  # UUIDs
]
MAX_REFS = 200


def ref_candidates(attrs: Any, own: set[str]) -> set[str]:
    """Attribute values that look like another resource's identifier."""
    found: set[str] = set()
    stack: list[Any] = [attrs]
    while stack and len(found) < MAX_REFS:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif (
            isinstance(value, str)
            and 8 <= len(value) <= 512
            and value not in own
            and any(p.match(value) for p in _REF_PATTERNS)
        ):
            found.add(value)
    return found
