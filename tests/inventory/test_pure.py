"""Identity, placement and redaction rules (pure functions)."""

from __future__ import annotations

import pytest

from xcloudflow.inventory import identity, redact
from xcloudflow.inventory.parsing import InventoryParseError, ParsedResource, parse, provider_short_name

SALT = b"s" * 32


def res(
    attrs: dict,
    rtype: str = "aws_thing",
    provider: str = "aws",
    kind: str = "managed",
    native: str | None = None,
) -> ParsedResource:  # type: ignore[type-arg]
    return ParsedResource(
        addr="x.y",
        base_addr="x.y",
        kind=kind,
        provider=provider,
        resource_type=rtype,
        attrs=attrs,
        native_id=native,
    )


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"arn": "arn:aws:s3:::b"}, "arn:aws:s3:::b"),
        (
            {"self_link": "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i"},
            "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        ),
        ({"id": "/subscriptions/0000/resourceGroups/rg"}, "/subscriptions/0000/resourceGroups/rg"),
        ({"metadata": [{"uid": "9f1c"}]}, "k8s:9f1c"),
        ({"id": "local-thing"}, None),
    ],
)
def test_global_ids(attrs: dict, expected: str | None) -> None:  # type: ignore[type-arg]
    assert identity.global_id(res(attrs)) == expected


def test_pulumi_id_with_type_is_global() -> None:
    r = res({}, rtype="aws:s3/bucket:Bucket", native="b-1")
    assert identity.global_id(r) == "aws:s3/bucket:Bucket::b-1"


def test_uid_is_stable_and_scoped() -> None:
    a, _ = identity.stable_uid(res({}), tool="terraform", project="p", stack="s")
    b, _ = identity.stable_uid(res({}), tool="terraform", project="p", stack="s")
    c, _ = identity.stable_uid(res({}), tool="terraform", project="p", stack="other")
    g1, _ = identity.stable_uid(res({"arn": "arn:aws:s3:::b"}), tool="terraform", project="p", stack="s")
    g2, _ = identity.stable_uid(res({"arn": "arn:aws:s3:::b"}), tool="terraform", project="q", stack="t")
    assert a == b != c and g1 == g2


@pytest.mark.parametrize(
    ("attrs", "region"),
    [
        ({"region": "eu-west-1"}, "eu-west-1"),
        ({"location": "West Europe"}, "westeurope"),
        ({"arn": "arn:aws:ec2:us-east-2:1:vpc/v"}, "us-east-2"),
        ({"availability_zone": "eu-central-1b"}, "eu-central-1"),
        ({"zone": "europe-west1-c"}, "europe-west1"),
        ({}, None),
    ],
)
def test_regions(attrs: dict, region: str | None) -> None:  # type: ignore[type-arg]
    assert identity.region_of(res(attrs)) == region


def test_clouds_and_provider_names() -> None:
    assert provider_short_name('module.a.provider["registry.terraform.io/hashicorp/google"].eu') == "google"
    assert identity.cloud_of("google") == "gcp" and identity.cloud_of("azurerm") == "azure"
    assert identity.cloud_of("alicloud") == "alibaba" and identity.cloud_of("terraform") is None


def test_redaction_rules() -> None:
    attrs = {
        "password": "hunter2",
        "token_expires_at": "2027",
        "credentials": {"user": "admin", "key_id": "AKIA1"},
        "tags": {"env": "prod"},
        "enable_secret_rotation": True,
        "nested": [{"client_secret": "s3"}],
        "pulumi": {
            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
            "ciphertext": "v1:x",
        },
        "endpoint": "db.internal",
    }
    out = redact.redact(attrs, salt=SALT, sensitive_paths=[["endpoint"]])
    assert out["password"].startswith("(sensitive:") and out["token_expires_at"] == "2027"
    assert out["credentials"]["user"].startswith("(sensitive:") and out["credentials"]["key_id"] == "AKIA1"
    assert out["tags"] == {"env": "prod"} and out["enable_secret_rotation"] is True
    assert out["nested"][0]["client_secret"].startswith("(sensitive:")
    assert out["pulumi"].startswith("(sensitive:") and out["endpoint"].startswith("(sensitive:")
    assert "hunter2" not in repr(out) and "admin" not in repr(out)
    assert attrs["password"] == "hunter2"  # the input is not modified
    # Same secret, same marker; other secret or other salt, other marker.
    assert redact.redact({"password": "hunter2"}, salt=SALT) == {"password": out["password"]}
    assert redact.redact({"password": "other"}, salt=SALT) != {"password": out["password"]}
    assert redact.redact({"password": "hunter2"}, salt=b"t" * 32) != {"password": out["password"]}


def test_ref_candidates() -> None:
    found = identity.ref_candidates(
        {
            "vpc_id": "vpc-0a1b2c3d4e5f60718",
            "name": "web server",
            "arn": "arn:aws:x:y:1:z",
            "list": ["sg-0123456789abcdef0"],
        },
        own={"arn:aws:x:y:1:z"},
    )
    assert found == {"vpc-0a1b2c3d4e5f60718", "sg-0123456789abcdef0"}


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 3, "resources": []},
        {"version": 4, "resources": [1]},
        {"version": 4, "resources": [{"type": "a"}]},
        {"version": 4, "resources": [{"type": "a", "name": "b", "instances": [{"attributes": "x"}]}]},
    ],
)
def test_terraform_parse_errors_say_where(doc: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InventoryParseError):
        parse("terraform", doc)


def test_count_for_each_module_and_tainted() -> None:
    doc = {
        "version": 4,
        "resources": [
            {
                "module": 'module.net["eu"]',
                "mode": "managed",
                "type": "aws_subnet",
                "name": "s",
                "provider": 'module.net.provider["registry.terraform.io/hashicorp/aws"]',
                "instances": [
                    {"index_key": 0, "attributes": {"id": "a"}},
                    {"index_key": "k", "status": "tainted", "attributes": {"id": "b"}},
                ],
            },
        ],
    }
    parsed = parse("terraform", doc)
    assert [p.addr for p in parsed] == [
        'module.net["eu"].aws_subnet.s[0]',
        'module.net["eu"].aws_subnet.s["k"]',
    ]
    assert parsed[1].status == "tainted" and parsed[0].base_addr == 'module.net["eu"].aws_subnet.s'
