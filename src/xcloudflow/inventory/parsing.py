"""Read Terraform v4 states and Pulumi stack exports into one flat list of resource instances.

Pure functions over parsed JSON: no database, no I/O. Errors are `InventoryParseError` with a message
that says what is wrong and where (the consumer records it on the version and goes on).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import re
from dataclasses import dataclass, field
from typing import Any

from xcloudflow.inventory.redact import KnownSecrets, scalars, value_at

_PROVIDER_RE = re.compile(r'provider\["(?P<source>[^"]+)"\]')


class InventoryParseError(Exception):
    pass


@dataclass
class ParsedResource:
    addr: str
    base_addr: str  # the resource's address without the instance key (Terraform `dependencies` use it)
    kind: str  # managed | data | stack | provider | component
    provider: str  # short provider name: aws, google, azurerm, kubernetes, terraform, ...
    resource_type: str
    attrs: dict[str, Any]
    sensitive_paths: list[list[str | int]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    parent: str | None = None
    provider_ref: str | None = None
    status: str | None = None
    native_id: str | None = None
    # A digest of the instance as stored: keyed, it tells an unchanged resource apart without
    # redacting or diffing it again.
    source: bytes = b""


def fingerprint(value: Any) -> bytes:
    """A digest of parsed JSON for change detection (never stored as is: the service keys it).

    marshal is several times faster than json.dumps and deterministic for the same parsed document;
    its format may change with the Python version, which only costs one re-redaction of unchanged
    resources after an upgrade (their attribute hashes still match, so no event is written).
    """
    return hashlib.sha256(marshal.dumps(value)).digest()


def provider_short_name(provider: str) -> str:
    """`provider["registry.terraform.io/hashicorp/aws"].east` -> `aws`; `aws:s3/bucket:Bucket` -> `aws`."""
    match = _PROVIDER_RE.search(provider)
    if match:
        return match.group("source").rsplit("/", 1)[-1]
    return provider.split(":", 1)[0]


def _instance_addr(base: str, key: Any) -> str:
    if key is None:
        return base
    if isinstance(key, str):
        return f"{base}[{json.dumps(key)}]"
    return f"{base}[{key}]"


def _sensitive_paths(raw: Any) -> list[list[str | int]]:
    paths: list[list[str | int]] = []
    for path in raw or []:
        steps: list[str | int] = []
        for step in path if isinstance(path, list) else []:
            if isinstance(step, dict) and "value" in step:
                value = step["value"]
                steps.append(value if isinstance(value, (str, int)) else str(value))
        if steps:
            paths.append(steps)
    return paths


def parse_terraform(doc: Any, *, include_data: bool = False) -> list[ParsedResource]:
    if not isinstance(doc, dict) or doc.get("version") != 4 or not isinstance(doc.get("resources"), list):
        raise InventoryParseError(
            "not a Terraform v4 state: expected an object with version 4 and a resources array"
        )
    out: list[ParsedResource] = []
    for i, res in enumerate(doc["resources"]):
        if not isinstance(res, dict):
            raise InventoryParseError(f"resources[{i}] is not an object")
        mode = res.get("mode", "managed")
        if mode == "data" and not include_data:
            continue
        rtype, name = res.get("type"), res.get("name")
        if not isinstance(rtype, str) or not isinstance(name, str):
            raise InventoryParseError(f"resources[{i}] has no type or name")
        base = f"{rtype}.{name}" if mode != "data" else f"data.{rtype}.{name}"
        if res.get("module"):
            base = f"{res['module']}.{base}"
        provider = provider_short_name(str(res.get("provider", rtype.split("_", 1)[0])))
        instances = res.get("instances")
        if not isinstance(instances, list):
            raise InventoryParseError(f"resources[{i}] ({base}) has no instances array")
        for j, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise InventoryParseError(f"resources[{i}].instances[{j}] ({base}) is not an object")
            addr = _instance_addr(base, inst.get("index_key"))
            if inst.get("deposed"):
                addr = f"{addr} (deposed {inst['deposed']})"
            attrs = inst.get("attributes")
            if attrs is None and isinstance(inst.get("attributes_flat"), dict):
                attrs = dict(inst["attributes_flat"])
            if not isinstance(attrs, dict):
                raise InventoryParseError(f"{addr}: attributes are not an object")
            native = attrs.get("id")
            source = fingerprint([rtype, base, res.get("provider"), inst])
            out.append(
                ParsedResource(
                    addr=addr,
                    base_addr=base,
                    kind="data" if mode == "data" else "managed",
                    provider=provider,
                    resource_type=rtype,
                    attrs=attrs,
                    sensitive_paths=_sensitive_paths(inst.get("sensitive_attributes")),
                    depends_on=[d for d in inst.get("dependencies") or [] if isinstance(d, str)],
                    status=inst.get("status"),
                    native_id=native if isinstance(native, str) and native else None,
                    source=source,
                )
            )
    return out


def _pulumi_kind(res: dict[str, Any]) -> str:
    rtype = res["type"]
    if rtype == "pulumi:pulumi:Stack":
        return "stack"
    if rtype.startswith("pulumi:providers:"):
        return "provider"
    return "managed" if res.get("custom") else "component"


def parse_pulumi(doc: Any) -> list[ParsedResource]:
    if not isinstance(doc, dict) or not isinstance(doc.get("deployment"), dict):
        raise InventoryParseError("not a Pulumi stack export: expected an object with a deployment object")
    out: list[ParsedResource] = []
    for i, res in enumerate(doc["deployment"].get("resources") or []):
        if (
            not isinstance(res, dict)
            or not isinstance(res.get("urn"), str)
            or not isinstance(res.get("type"), str)
        ):
            raise InventoryParseError(f"deployment.resources[{i}] needs a string urn and type")
        rtype: str = res["type"]
        kind = _pulumi_kind(res)
        provider = rtype.split(":")[2] if kind == "provider" else provider_short_name(rtype)
        attrs: dict[str, Any] = {}
        for key in ("outputs", "inputs"):
            if isinstance(res.get(key), dict) and res[key]:
                attrs = res[key]
                break
        native = res.get("id")
        deps = [d for d in res.get("dependencies") or [] if isinstance(d, str)]
        out.append(
            ParsedResource(
                addr=res["urn"],
                base_addr=res["urn"],
                kind=kind,
                provider=provider,
                resource_type=rtype,
                attrs=dict(attrs),
                depends_on=deps,
                parent=res.get("parent") if isinstance(res.get("parent"), str) else None,
                provider_ref=res.get("provider") if isinstance(res.get("provider"), str) else None,
                status="deleted" if res.get("delete") else None,
                native_id=native if isinstance(native, str) and native else None,
                source=fingerprint(res),
            )
        )
    return out


def state_secrets(doc: Any) -> KnownSecrets:
    """The secrets of a whole Terraform state: the values at the sensitive paths of every instance
    (data sources included) and the values of sensitive outputs. Call it on a document `parse` accepted."""
    found: list[str] = []
    for res in doc.get("resources") or []:
        for inst in res.get("instances") or [] if isinstance(res, dict) else []:
            if isinstance(inst, dict) and inst.get("sensitive_attributes"):
                attrs = inst.get("attributes")
                for path in _sensitive_paths(inst["sensitive_attributes"]):
                    found.extend(scalars(value_at(attrs, path)))
    outputs = doc.get("outputs")
    for out in outputs.values() if isinstance(outputs, dict) else ():
        if isinstance(out, dict) and out.get("sensitive"):
            found.extend(scalars(out.get("value")))
    return KnownSecrets(found)


def parse(tool: str, doc: Any, *, include_data: bool = False) -> list[ParsedResource]:
    return parse_terraform(doc, include_data=include_data) if tool == "terraform" else parse_pulumi(doc)
