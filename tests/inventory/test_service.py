"""Events, current inventory and edges from hand-written Terraform and Pulumi states."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select

from tests.factories import pulumi_export
from xcloudflow.db import Database
from xcloudflow.inventory.diffing import replay
from xcloudflow.inventory.models import DependencyEdge, InventoryError, ResourceCurrent, ResourceEvent


def tf(serial: int, resources: list[dict[str, Any]], lineage: str = "lin-1") -> dict[str, Any]:
    return {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": {},
        "resources": resources,
    }


def aws_vpc(cidr: str = "10.0.0.0/16", name: str = "main", module: str | None = None) -> dict[str, Any]:
    res = {
        "mode": "managed",
        "type": "aws_vpc",
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [
            {
                "schema_version": 1,
                "attributes": {
                    "id": "vpc-0a1b2c3d4e5f60718",
                    "arn": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0a1b2c3d4e5f60718",
                    "cidr_block": cidr,
                    "tags": {"env": "prod"},
                },
                "sensitive_attributes": [],
            }
        ],
    }
    if module:
        res["module"] = module
    return res


def subnets(keys: list[str], vpc_dep: str = "aws_vpc.main") -> dict[str, Any]:
    return {
        "mode": "managed",
        "type": "aws_subnet",
        "name": "private",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [
            {
                "index_key": k,
                "schema_version": 1,
                "attributes": {
                    "id": f"subnet-{i:017x}",
                    "arn": f"arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-{i:017x}",
                    "vpc_id": "vpc-0a1b2c3d4e5f60718",
                    "availability_zone": f"eu-west-1{k}",
                },
                "sensitive_attributes": [],
                "dependencies": [vpc_dep],
            }
            for i, k in ((ord(k), k) for k in keys)
        ],
    }


def db_instance(password: str) -> dict[str, Any]:
    return {
        "mode": "managed",
        "type": "aws_db_instance",
        "name": "db",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [
            {
                "schema_version": 2,
                "status": "tainted",
                "attributes": {
                    "id": "db-1",
                    "arn": "arn:aws:rds:eu-west-1:123456789012:db:db-1",
                    "password": password,
                    "master_user_secret": [{"secret_arn": "arn:x"}],
                    "engine": "postgres",
                    "endpoint": "db.internal",
                },
                "sensitive_attributes": [[{"type": "get_attr", "value": "endpoint"}]],
            }
        ],
    }


def events(db: Database) -> list[ResourceEvent]:
    with db.read() as session:
        return list(
            session.scalars(select(ResourceEvent).order_by(ResourceEvent.state_version, ResourceEvent.addr))
        )


def current(db: Database) -> dict[str, ResourceCurrent]:
    with db.read() as session:
        return {r.addr: r for r in session.scalars(select(ResourceCurrent))}


def test_creates_updates_deletes_with_patches(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc(), subnets(["a", "b"])]))
    assert consume() == 3
    put_state(tf(2, [aws_vpc(cidr="10.1.0.0/16"), subnets(["a", "c"])]))
    consume()
    evs = events(db)
    assert [(e.state_version, e.action, e.addr) for e in evs] == [
        (1, "create", 'aws_subnet.private["a"]'),
        (1, "create", 'aws_subnet.private["b"]'),
        (1, "create", "aws_vpc.main"),
        (2, "delete", 'aws_subnet.private["b"]'),
        (2, "create", 'aws_subnet.private["c"]'),
        (2, "update", "aws_vpc.main"),
    ]
    vpc_update = next(e for e in evs if e.action == "update")
    assert vpc_update.patch_json == [
        {"op": "replace", "path": "/attributes/cidr_block", "value": "10.1.0.0/16"}
    ]
    assert vpc_update.cloud == "aws" and vpc_update.region == "eu-west-1" and vpc_update.provider == "aws"
    assert vpc_update.before_hash != vpc_update.after_hash
    now = current(db)
    assert now['aws_subnet.private["b"]'].deleted_at is not None
    assert now['aws_subnet.private["c"]'].region == "eu-west-1"
    # Replaying a resource's patches from {} gives its current document.
    vpc_uid = vpc_update.stable_uid
    doc = replay([e.patch_json or [] for e in evs if e.stable_uid == vpc_uid])
    assert doc == {"address": "aws_vpc.main", "attributes": now["aws_vpc.main"].attrs}


def test_unchanged_version_writes_nothing(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc()]))
    put_state(tf(2, [aws_vpc()]))
    assert consume() == 1
    assert len(events(db)) == 1


def test_moved_resource_is_one_update_of_its_address(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc()]))
    put_state(tf(2, [aws_vpc(module="module.net")]))
    consume()
    evs = events(db)
    assert [(e.action, e.addr) for e in evs] == [
        ("create", "aws_vpc.main"),
        ("update", "module.net.aws_vpc.main"),
    ]
    assert evs[1].patch_json == [{"op": "replace", "path": "/address", "value": "module.net.aws_vpc.main"}]


def test_secrets_are_redacted_but_changes_still_show(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [db_instance("hunter2")]))
    put_state(tf(2, [db_instance("correct-horse")]))
    consume()
    row = current(db)["aws_db_instance.db"]
    assert row.attrs["password"].startswith("(sensitive:")
    assert row.attrs["endpoint"].startswith("(sensitive:")  # listed in sensitive_attributes
    assert row.attrs["master_user_secret"] == [{"secret_arn": "arn:x"}]  # *_arn is no secret
    assert row.attrs["engine"] == "postgres"
    update = [e for e in events(db) if e.action == "update"]
    assert len(update) == 1 and update[0].patch_json[0]["path"] == "/attributes/password"
    with db.read() as session:
        blob = repr([(e.patch_json, e.addr) for e in session.scalars(select(ResourceEvent))]) + repr(
            row.attrs
        )
    assert "hunter2" not in blob and "correct-horse" not in blob and "db.internal" not in blob


def test_dependency_and_ref_edges(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc(), subnets(["a"])]))
    # Another stack references the vpc by id: a cross-stack ref edge.
    sg = {
        "mode": "managed",
        "type": "aws_security_group",
        "name": "web",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [
            {
                "schema_version": 1,
                "attributes": {"id": "sg-0123456789abcdef0", "vpc_id": "vpc-0a1b2c3d4e5f60718"},
            }
        ],
    }
    put_state(tf(1, [sg]), stack="apps")
    consume()
    now = current(db)
    with db.read() as session:
        edges = {(e.src_uid, e.dst_uid, e.kind) for e in session.scalars(select(DependencyEdge))}
    vpc, subnet, web = (
        now["aws_vpc.main"].stable_uid,
        now['aws_subnet.private["a"]'].stable_uid,
        now["aws_security_group.web"].stable_uid,
    )
    assert (subnet, vpc, "depends_on") in edges
    assert (subnet, vpc, "ref") in edges
    assert (web, vpc, "ref") in edges
    # The vpc goes: all its edges go.
    put_state(tf(2, [subnets(["a"])]))
    consume()
    with db.read() as session:
        left = {(e.src_uid, e.dst_uid) for e in session.scalars(select(DependencyEdge))}
    assert all(vpc not in pair for pair in left)


def test_ref_edge_drawn_when_target_arrives_later(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    sg = {
        "mode": "managed",
        "type": "aws_security_group",
        "name": "web",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [{"attributes": {"id": "sg-0123456789abcdef0", "vpc_id": "vpc-0a1b2c3d4e5f60718"}}],
    }
    put_state(tf(1, [sg]), stack="apps")
    consume()
    put_state(tf(1, [aws_vpc()]))
    consume()
    now = current(db)
    with db.read() as session:
        edges = {(e.src_uid, e.dst_uid, e.kind) for e in session.scalars(select(DependencyEdge))}
    assert (now["aws_security_group.web"].stable_uid, now["aws_vpc.main"].stable_uid, "ref") in edges


def test_pulumi_resources_kinds_and_edges(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(pulumi_export(), tool="pulumi", project="shop", stack="dev")
    consume()
    now = current(db)
    kinds = {addr.rsplit("::", 1)[-1]: (r.kind, r.provider) for addr, r in now.items()}
    assert kinds["shop-dev"] == ("stack", "pulumi")
    assert kinds["default_6_0_0"] == ("provider", "aws")
    assert kinds["site"] == ("managed", "aws")
    bucket = now["urn:pulumi:dev::shop::aws:s3/bucket:Bucket::site"]
    assert bucket.attrs["arn"] == "arn:aws:s3:::b-123" and bucket.cloud == "aws"
    stack_out = now["urn:pulumi:dev::shop::pulumi:pulumi:Stack::shop-dev"].attrs
    assert stack_out["dbPassword"].startswith("(sensitive:")
    with db.read() as session:
        kinds_of_edges = {e.kind for e in session.scalars(select(DependencyEdge))}
    assert {"parent", "provider"} <= kinds_of_edges


def test_unparseable_version_is_recorded_and_queue_goes_on(db, admin, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc()]))
    broken = tf(2, [{"mode": "managed", "type": "aws_vpc", "name": "x", "instances": "nope"}])
    put_state(broken)
    put_state(tf(3, [aws_vpc(cidr="10.9.0.0/16")]))
    consume()
    with db.read() as session:
        errors = list(session.scalars(select(InventoryError)))
    assert [(e.state_version, "instances" in e.message) for e in errors] == [(2, True)]
    assert [e.action for e in events(db)] == ["create", "update"]


def test_data_sources_skipped_by_default(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(aws_vpc())
    data["mode"] = "data"
    put_state(tf(1, [data, aws_vpc(name="other")]))
    consume()
    assert list(current(db)) == ["aws_vpc.other"]


def test_dependency_only_change_moves_edges_without_events(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc(), subnets(["a"])]))
    consume()
    put_state(tf(2, [aws_vpc(), subnets(["a"], vpc_dep="aws_vpc.other")]))
    consume()
    assert [e.state_version for e in events(db)] == [1, 1]  # attributes unchanged: no event
    with db.read() as session:
        kinds = sorted(e.kind for e in session.scalars(select(DependencyEdge)))
    assert kinds == ["ref"]  # the depends_on edge went with the dependency; the id reference stays
    put_state(tf(3, [aws_vpc(cidr="10.7.0.0/16"), subnets(["a"], vpc_dep="aws_vpc.other")]))
    consume()
    assert [e.action for e in events(db) if e.state_version == 3] == ["update"]


def test_locked_stack_is_ingested_after_its_operation(db, admin, put_state) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import lock_info
    from xcloudflow.inventory import service as inventory

    put_state(tf(1, [aws_vpc()]))
    info = lock_info()
    assert admin.request("LOCK", "/terraform/state/net/prod", json=info).status_code == 200
    with db.read() as session:
        assert inventory.pending_stacks(session=session, defer_locked_seconds=60) == []
        assert inventory.pending_stacks(session=session) != []  # without deferral it is pending
    assert admin.request("UNLOCK", "/terraform/state/net/prod", json=info).status_code == 200
    with db.read() as session:
        assert inventory.pending_stacks(session=session, defer_locked_seconds=60) != []


def test_secret_values_never_become_ref_candidates(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    from xcloudflow.inventory.models import ResourceRef

    secret_uuid = "0b9c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"  # looks like an id, but is a secret
    res = {
        "mode": "managed",
        "type": "aws_thing",
        "name": "t",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [
            {
                "attributes": {"id": "x-1", "api_token": secret_uuid, "peer": "vpc-0a1b2c3d4e5f60718"},
                "sensitive_attributes": [],
            }
        ],
    }
    put_state(tf(1, [res]))
    consume()
    with db.read() as session:
        values = set(session.scalars(select(ResourceRef.value)))
    assert values == {"vpc-0a1b2c3d4e5f60718"}
