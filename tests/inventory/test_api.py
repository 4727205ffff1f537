"""The inventory API: resources, history, events, summary and errors, over states written through the
real state API and projected by the real consumer, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

AWS = 'provider["registry.terraform.io/hashicorp/aws"]'
GOOGLE = 'provider["registry.terraform.io/hashicorp/google"]'
BUILTIN = 'provider["terraform.io/builtin/terraform"]'
VPC_ID = "vpc-0a1b2c3d4e5f60718"
VPC_ARN = f"arn:aws:ec2:eu-west-1:123456789012:vpc/{VPC_ID}"


def tf(serial: int, resources: list[dict[str, Any]], lineage: str = "lin-api") -> dict[str, Any]:
    return {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": {},
        "resources": resources,
    }


def resource(
    rtype: str,
    name: str,
    instances: list[tuple[Any, dict[str, Any], list[str]]],
    *,
    provider: str = AWS,
    module: str | None = None,
) -> dict[str, Any]:
    """A managed resource; instances are (index_key or None, attributes, dependencies)."""
    out: dict[str, Any] = {
        "mode": "managed",
        "type": rtype,
        "name": name,
        "provider": provider,
        "instances": [
            {
                **({"index_key": key} if key is not None else {}),
                "schema_version": 0,
                "attributes": attrs,
                "sensitive_attributes": [],
                **({"dependencies": deps} if deps else {}),
            }
            for key, attrs, deps in instances
        ],
    }
    if module:
        out["module"] = module
    return out


def subnet_id(key: str) -> str:
    return f"subnet-{ord(key):017x}"


def net_prod(serial: int = 1, cidr: str = "10.0.0.0/16") -> dict[str, Any]:
    """net/prod: a vpc in a module, for_each subnets, counted instances and a GCP bucket."""
    vpc = {"id": VPC_ID, "arn": VPC_ARN, "cidr_block": cidr, "tags": {"env": "prod", "team": "core"}}
    subnets = [
        (
            k,
            {
                "id": subnet_id(k),
                "arn": f"arn:aws:ec2:eu-west-1:123456789012:subnet/{subnet_id(k)}",
                "vpc_id": VPC_ID,
                "availability_zone": f"eu-west-1{k}",
            },
            ["module.net.aws_vpc.main"],
        )
        for k in ("a", "b")
    ]
    web = [
        (
            i,
            {
                "id": f"i-{i:017x}",
                "arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/i-{i:017x}",
                "subnet_id": subnet_id("a"),
                "port": 443,
                "root_block_device": [{"volume_size": 8 + 2 * i}],
                "tags": {"env": env},
            },
            ["aws_subnet.private"],
        )
        for i, env in ((0, "prod"), (1, "dev"))
    ]
    bucket = {
        "id": "logs",
        "self_link": "https://www.googleapis.com/storage/v1/b/logs",
        "location": "EU",
    }
    return tf(
        serial,
        [
            resource("aws_vpc", "main", [(None, vpc, [])], module="module.net"),
            resource("aws_subnet", "private", subnets),
            resource("aws_instance", "web", web),
            resource("google_storage_bucket", "logs", [(None, bucket, [])], provider=GOOGLE),
        ],
    )


def data(name: str, deps: list[str], n: int) -> dict[str, Any]:
    attrs = {"id": f"00000000-0000-4000-8000-{n:012d}", "input": name, "output": name}
    return resource("terraform_data", name, [(None, attrs, deps)], provider=BUILTIN)


def apps_dev(serial: int = 1, with_c: bool = True) -> dict[str, Any]:
    """apps/dev: a security group in the net/prod vpc (cross-stack ref), a chain a <- b <- c (b
    depends on a, c on b) and a cycle x <-> y."""
    sg = resource("aws_security_group", "web", [(None, {"id": "sg-0123456789abcdef0", "vpc_id": VPC_ID}, [])])
    chain = [data("a", [], 1), data("b", ["terraform_data.a"], 2)]
    if with_c:
        chain.append(data("c", ["terraform_data.b"], 3))
    cycle = [data("x", ["terraform_data.y"], 4), data("y", ["terraform_data.x"], 5)]
    return tf(serial, [sg, *chain, *cycle], lineage="lin-apps")


PutState = Callable[..., None]
Consume = Callable[[], int]


def seed(put_state: PutState, consume: Consume) -> None:
    put_state(net_prod())
    put_state(apps_dev(), project="apps", stack="dev")
    consume()


def uids(client: TestClient, **params: Any) -> dict[str, str]:
    """addr -> stable_uid of every resource matching the filters (all pages)."""
    out: dict[str, str] = {}
    cursor = None
    while True:
        resp = client.get("/api/v1/resources", params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        out.update((i["addr"], i["stable_uid"]) for i in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


NET = {
    "module.net.aws_vpc.main",
    'aws_subnet.private["a"]',
    'aws_subnet.private["b"]',
    "aws_instance.web[0]",
    "aws_instance.web[1]",
    "google_storage_bucket.logs",
}
APPS = {
    "aws_security_group.web",
    "terraform_data.a",
    "terraform_data.b",
    "terraform_data.c",
    "terraform_data.x",
    "terraform_data.y",
}


def test_list_and_filters(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    everything = reader.get("/api/v1/resources").json()
    assert everything["next_cursor"] is None
    assert {i["addr"] for i in everything["items"]} == NET | APPS
    vpc = next(i for i in everything["items"] if i["addr"] == "module.net.aws_vpc.main")
    assert set(vpc) == {
        "stable_uid",
        "tool",
        "project",
        "stack",
        "kind",
        "provider",
        "type",
        "addr",
        "cloud",
        "region",
        "global_id",
        "updated_at",
        "deleted_at",
    }
    assert (vpc["tool"], vpc["project"], vpc["stack"], vpc["kind"]) == ("terraform", "net", "prod", "managed")
    assert (vpc["provider"], vpc["type"], vpc["cloud"], vpc["region"]) == (
        "aws",
        "aws_vpc",
        "aws",
        "eu-west-1",
    )
    assert vpc["global_id"] == VPC_ARN and vpc["deleted_at"] is None
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"stack": "prod"}, NET),
        ({"project": "apps"}, APPS),
        ({"tool": "terraform", "stack": "dev"}, APPS),
        ({"type": "aws_subnet"}, {'aws_subnet.private["a"]', 'aws_subnet.private["b"]'}),
        ({"provider": "google"}, {"google_storage_bucket.logs"}),
        ({"cloud": "gcp"}, {"google_storage_bucket.logs"}),
        ({"region": "eu"}, {"google_storage_bucket.logs"}),
        ({"provider": "terraform"}, {f"terraform_data.{n}" for n in "abcxy"}),
        ({"kind": "managed"}, NET | APPS),
        ({"kind": "data"}, set()),
        ({"q": "PRIVATE"}, {'aws_subnet.private["a"]', 'aws_subnet.private["b"]'}),
        ({"q": '["a"]'}, {'aws_subnet.private["a"]'}),
        ({"q": "web["}, {"aws_instance.web[0]", "aws_instance.web[1]"}),
        ({"q": "%"}, set()),  # LIKE wildcards are escaped
        ({"attr": "tags.env:prod"}, {"module.net.aws_vpc.main", "aws_instance.web[0]"}),
        ({"attr": ["tags.env:prod", "tags.team:core"]}, {"module.net.aws_vpc.main"}),
        ({"attr": "port:443"}, {"aws_instance.web[0]", "aws_instance.web[1]"}),
        ({"attr": "vpc_id:" + VPC_ID, "stack": "dev"}, {"aws_security_group.web"}),
        ({"attr": "tags.env:staging"}, set()),
        ({"attr": "root_block_device.0.volume_size:10"}, {"aws_instance.web[1]"}),
        ({"attr": "root_block_device.1.volume_size:10"}, set()),
    ]
    for params, expected in cases:
        assert set(uids(reader, **params)) == expected, params
    regions = {i["addr"]: i["region"] for i in everything["items"]}
    assert regions['aws_subnet.private["a"]'] == "eu-west-1"
    assert regions["google_storage_bucket.logs"] == "eu"


def test_pagination_is_complete_and_ordered(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    full = [i["stable_uid"] for i in reader.get("/api/v1/resources").json()["items"]]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = reader.get("/api/v1/resources", params=params).json()
        seen += [i["stable_uid"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == full and len(set(seen)) == 12
    # Grouped by tool, project, stack (addresses then follow the database's collation).
    items = reader.get("/api/v1/resources").json()["items"]
    keys = [(i["tool"], i["project"], i["stack"]) for i in items]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/resources?colour=red", "colour"),
        ("/api/v1/resources?stack=prod&Stack=x", "Stack"),
        ("/api/v1/events?resource_type=x", "resource_type"),
        ("/api/v1/events/summary?action=create", "action"),
        ("/api/v1/graph?stacks=prod", "stacks"),
        ("/api/v1/inventory/errors?version=2", "version"),
        ("/api/v1/resources/00000000-0000-0000-0000-000000000000?x=1", "x"),
    ],
)
def test_unknown_filters_are_400(reader: TestClient, path: str, field: str) -> None:
    resp = reader.get(path)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["details"]["field"] == field and repr(field) in error["message"]


def test_bad_values_are_400(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    for path, field in [
        ("/api/v1/resources?attr=tags.env", "attr"),
        ("/api/v1/resources?attr=:prod", "attr"),
        ("/api/v1/resources?attr=tags..env:prod", "attr"),
        ("/api/v1/resources?limit=0", "limit"),
        ("/api/v1/resources?cursor=bm9wZQ", "cursor"),
        ("/api/v1/resources/not-a-uuid", "uid"),
        ("/api/v1/resources/not-a-uuid/history", "uid"),
        ("/api/v1/events?action=explode", "action"),
        ("/api/v1/events?run_id=nope", "run_id"),
        ("/api/v1/graph/blast-radius/nope", "uid"),
    ]:
        resp = reader.get(path)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["error"]["details"]["field"] == field, path


ROUTES = [
    "/api/v1/resources",
    "/api/v1/resources/00000000-0000-0000-0000-000000000000",
    "/api/v1/resources/00000000-0000-0000-0000-000000000000/history",
    "/api/v1/events",
    "/api/v1/events/summary",
    "/api/v1/graph",
    "/api/v1/graph?format=dot",
    "/api/v1/graph/blast-radius/00000000-0000-0000-0000-000000000000",
    "/api/v1/inventory/errors",
    "/api/v1/resources?colour=red",  # 401 comes before the unknown-parameter 400
]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_a_token(anon: TestClient, path: str) -> None:
    resp = anon.get(path)
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_show_with_attrs_and_edges(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader)
    vpc = reader.get(f"/api/v1/resources/{ids['module.net.aws_vpc.main']}")
    assert vpc.status_code == 200, vpc.text
    body = vpc.json()
    assert body["attrs"] == {
        "id": VPC_ID,
        "arn": VPC_ARN,
        "cidr_block": "10.0.0.0/16",
        "tags": {"env": "prod", "team": "core"},
    }
    assert body["native_id"] == VPC_ID and body["state_version"] == 1 and body["depends_on"] == []
    dependents = {(d["addr"], d["kind"], d["stack"]) for d in body["dependents"]}
    assert dependents == {
        ('aws_subnet.private["a"]', "depends_on", "prod"),
        ('aws_subnet.private["a"]', "ref", "prod"),
        ('aws_subnet.private["b"]', "depends_on", "prod"),
        ('aws_subnet.private["b"]', "ref", "prod"),
        ("aws_security_group.web", "ref", "dev"),
    }
    web = reader.get(f"/api/v1/resources/{ids['aws_instance.web[1]']}").json()
    assert {(d["addr"], d["kind"]) for d in web["depends_on"]} == {
        ('aws_subnet.private["a"]', "depends_on"),
        ('aws_subnet.private["a"]', "ref"),
        ('aws_subnet.private["b"]', "depends_on"),
    }
    assert web["dependents"] == [] and web["attrs"]["tags"] == {"env": "dev"}
    missing = reader.get("/api/v1/resources/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_secrets_stay_redacted_in_the_api(admin: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    db = resource(
        "aws_db_instance",
        "db",
        [(None, {"id": "db-1", "password": "hunter2", "engine": "postgres"}, [])],
    )
    put_state(tf(1, [db]))
    put_state(
        tf(
            2,
            [
                resource(
                    "aws_db_instance",
                    "db",
                    [(None, {"id": "db-1", "password": "s3cr3t!", "engine": "postgres"}, [])],
                )
            ],
        )
    )
    consume()
    uid = uids(admin)["aws_db_instance.db"]
    shown = admin.get(f"/api/v1/resources/{uid}").text
    history = admin.get(f"/api/v1/resources/{uid}/history").text
    events = admin.get("/api/v1/events").text
    assert "hunter2" not in shown + history + events and "s3cr3t!" not in shown + history + events
    assert admin.get(f"/api/v1/resources/{uid}").json()["attrs"]["password"].startswith("(sensitive:")
    assert [e["action"] for e in admin.get(f"/api/v1/resources/{uid}/history").json()["items"]] == [
        "update",
        "create",
    ]


def test_history_newest_first_with_patches(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    put_state(net_prod(serial=2, cidr="10.1.0.0/16"))
    consume()
    uid = uids(reader)["module.net.aws_vpc.main"]
    items = reader.get(f"/api/v1/resources/{uid}/history").json()["items"]
    assert [(e["action"], e["state_version"]) for e in items] == [("update", 2), ("create", 1)]
    update, create = items
    assert update["patch_json"] == [
        {"op": "replace", "path": "/attributes/cidr_block", "value": "10.1.0.0/16"}
    ]
    assert create["before_hash"] is None and create["after_hash"] == update["before_hash"]
    assert update["after_hash"] != update["before_hash"]
    assert update["addr"] == "module.net.aws_vpc.main" and update["stack"] == "prod"
    assert create["patch_json"][0]["op"] == "add"
    page = reader.get(f"/api/v1/resources/{uid}/history", params={"limit": 1}).json()
    assert [e["action"] for e in page["items"]] == ["update"]
    rest = reader.get(
        f"/api/v1/resources/{uid}/history", params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [e["action"] for e in rest["items"]] == ["create"] and rest["next_cursor"] is None
    assert reader.get("/api/v1/resources/00000000-0000-0000-0000-000000000000/history").status_code == 404


def test_deleted_resources_and_include_deleted(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    put_state(apps_dev(serial=2, with_c=False), project="apps", stack="dev")
    consume()
    assert "terraform_data.c" not in uids(reader)
    listed = reader.get("/api/v1/resources", params={"include_deleted": "true", "q": "terraform_data.c"})
    (item,) = listed.json()["items"]
    assert item["deleted_at"] is not None
    shown = reader.get(f"/api/v1/resources/{item['stable_uid']}").json()
    assert shown["deleted_at"] is not None and shown["depends_on"] == [] and shown["dependents"] == []
    history = reader.get(f"/api/v1/resources/{item['stable_uid']}/history").json()["items"]
    assert [e["action"] for e in history] == ["delete", "create"]


def test_events_filters_and_pages(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    put_state(net_prod(serial=2, cidr="10.1.0.0/16"))
    consume()
    events = reader.get("/api/v1/events").json()["items"]
    assert len(events) == 13  # 12 creates + 1 update
    assert events[0]["action"] == "update"  # newest first
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)

    def addrs(**params: Any) -> list[str]:
        resp = reader.get("/api/v1/events", params=params)
        assert resp.status_code == 200, resp.text
        return sorted(e["addr"] for e in resp.json()["items"])

    assert addrs(action="update") == ["module.net.aws_vpc.main"]
    assert len(addrs(action="create")) == 12
    assert addrs(stack="dev", type="aws_security_group") == ["aws_security_group.web"]
    assert addrs(project="net", type="aws_instance") == ["aws_instance.web[0]", "aws_instance.web[1]"]
    assert len(addrs(tool="terraform")) == 13 and addrs(tool="pulumi") == []
    run = events[0]["run_id"]
    assert addrs(run_id=run) == ["module.net.aws_vpc.main"]
    first_run = next(e["run_id"] for e in events if e["stack"] == "dev")
    assert len(addrs(run_id=first_run)) == 6
    at = datetime.fromisoformat(events[0]["at"])
    assert addrs(since=(at + timedelta(seconds=1)).isoformat()) == []
    assert len(addrs(until=(at + timedelta(days=1)).isoformat())) == 13
    naive = (at - timedelta(days=1)).replace(tzinfo=None).isoformat()  # taken as UTC
    assert len(addrs(since=naive)) == 13
    seen: list[str] = []
    cursor = None
    while True:
        page = reader.get(
            "/api/v1/events", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in events]


def test_event_summary_per_day_and_action(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    put_state(net_prod(serial=2, cidr="10.1.0.0/16"))
    consume()
    days = {
        datetime.fromisoformat(e["at"]).astimezone(UTC).date().isoformat()
        for e in reader.get("/api/v1/events").json()["items"]
    }
    (day,) = days
    assert reader.get("/api/v1/events/summary").json() == [
        {"day": day, "action": "create", "count": 12},
        {"day": day, "action": "update", "count": 1},
    ]
    assert reader.get("/api/v1/events/summary", params={"stack": "dev"}).json() == [
        {"day": day, "action": "create", "count": 6}
    ]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert reader.get("/api/v1/events/summary", params={"since": tomorrow}).json() == []


def test_inventory_errors_are_visible(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(net_prod())
    broken = tf(2, [{"mode": "managed", "type": "aws_vpc", "name": "x", "instances": "nope"}])
    put_state(broken)
    put_state(net_prod(serial=3, cidr="10.9.0.0/16"))
    put_state(apps_dev(), project="apps", stack="dev")
    consume()
    assert reader.get("/api/v1/inventory/errors").status_code == 200
    (error,) = reader.get("/api/v1/inventory/errors").json()
    assert (error["tool"], error["project"], error["stack"], error["state_version"]) == (
        "terraform",
        "net",
        "prod",
        2,
    )
    assert "instances" in error["message"] and error["at"]
    assert len(reader.get("/api/v1/inventory/errors", params={"stack": "prod", "project": "net"}).json()) == 1
    assert reader.get("/api/v1/inventory/errors", params={"stack": "dev"}).json() == []
    assert reader.get("/api/v1/inventory/errors", params={"tool": "pulumi"}).json() == []
    # The consumer went on: version 3 was projected.
    uid = uids(reader)["module.net.aws_vpc.main"]
    assert reader.get(f"/api/v1/resources/{uid}").json()["attrs"]["cidr_block"] == "10.9.0.0/16"


def test_organizations_do_not_see_each_other(admin: TestClient, db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    from xcloudflow.audit.schemas import AuditContext
    from xcloudflow.iam import service as iam

    seed(put_state, consume)
    put_state(tf(2, [{"mode": "managed", "type": "x", "name": "y", "instances": 1}]))
    consume()
    with db.write() as session:
        token = iam.create_organization(
            session=session, ctx=AuditContext(actor="test", org_id=None), name="other", admin_name="mallory"
        )
    other = TestClient(admin.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    vpc = uids(admin)["module.net.aws_vpc.main"]
    assert other.get("/api/v1/resources").json() == {"items": [], "next_cursor": None}
    assert other.get(f"/api/v1/resources/{vpc}").status_code == 404
    assert other.get(f"/api/v1/resources/{vpc}/history").status_code == 404
    assert other.get(f"/api/v1/graph/blast-radius/{vpc}").status_code == 404
    assert other.get("/api/v1/events").json()["items"] == []
    assert other.get("/api/v1/events/summary").json() == []
    assert other.get("/api/v1/graph").json() == {"nodes": [], "edges": []}
    assert other.get("/api/v1/inventory/errors").json() == []
    assert len(admin.get("/api/v1/inventory/errors").json()) == 1
