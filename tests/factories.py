"""Test data built the way clients build it: Terraform state documents and Pulumi exports."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import uuid
from typing import Any

LINEAGE = "7d1c4b9e-1111-2222-3333-444455556666"


def tf_state(
    serial: int = 1,
    lineage: str = LINEAGE,
    resources: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Terraform v4 state with one `terraform_data` resource per name -> input."""
    resources = resources if resources is not None else {"a": "hello"}
    return {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": outputs or {},
        "resources": [
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": name,
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [
                    {
                        "schema_version": 0,
                        "attributes": {
                            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, name)),
                            "input": value,
                            "output": value,
                            "triggers_replace": None,
                        },
                        "sensitive_attributes": [],
                    }
                ],
            }
            for name, value in resources.items()
        ],
        "check_results": None,
    }


def body(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def md5_header(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def lock_info(lock_id: str | None = None, who: str = "alice@laptop") -> dict[str, str]:
    return {
        "ID": lock_id or str(uuid.uuid4()),
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        "Created": "2026-11-22T10:00:00.000000Z",
        "Path": "",
    }


def pulumi_export(bucket_name: str = "b-123", version: int = 3) -> dict[str, Any]:
    stack_urn = "urn:pulumi:dev::shop::pulumi:pulumi:Stack::shop-dev"
    provider_urn = "urn:pulumi:dev::shop::pulumi:providers:aws::default_6_0_0"
    return {
        "version": version,
        "deployment": {
            "manifest": {"time": "2026-11-20T10:00:00Z", "magic": "f1e2", "version": "v3.140.0"},
            "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc:def"}},
            "resources": [
                {
                    "urn": stack_urn,
                    "custom": False,
                    "type": "pulumi:pulumi:Stack",
                    "outputs": {
                        "bucket": bucket_name,
                        "dbPassword": {
                            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                            "ciphertext": "v1:xyz",
                        },
                    },
                },
                {
                    "urn": provider_urn,
                    "custom": True,
                    "id": "0b7a-provider",
                    "type": "pulumi:providers:aws",
                    "inputs": {"region": "eu-west-1"},
                    "outputs": {"region": "eu-west-1"},
                },
                {
                    "urn": "urn:pulumi:dev::shop::aws:s3/bucket:Bucket::site",
                    "custom": True,
                    "id": bucket_name,
                    "type": "aws:s3/bucket:Bucket",
                    "parent": stack_urn,
                    "provider": f"{provider_urn}::0b7a-provider",
                    "inputs": {"bucket": bucket_name},
                    "outputs": {"bucket": bucket_name, "arn": f"arn:aws:s3:::{bucket_name}"},
                    "dependencies": [],
                    "propertyDependencies": {},
                },
            ],
        },
    }


def targz(
    files: dict[str, bytes | str] | None = None,
    *,
    members: list[tarfile.TarInfo] | None = None,
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    """A .tar.gz holding `files` (path -> content) and then the raw `members` (links, devices...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for path, content in (files or {}).items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in members or []:
            tar.addfile(info)
    return buf.getvalue()
