"""The inventory reads stored states through the depth guard (issue 11): a version stored before the
limit existed (depth 15,000 was accepted) is recorded as an error; the consumer goes on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.inventory.test_service import aws_vpc, events, tf
from tests.rss import peak_rss_growth
from xcloudflow import bounded
from xcloudflow.inventory.models import InventoryError


def deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_a_deep_stored_version_is_an_error_and_the_queue_goes_on(db, admin, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc()]))
    vpc = aws_vpc(cidr="10.1.0.0/16")
    vpc["instances"][0]["attributes"]["deep"] = deep(250)
    bounded.configure(bounded.ContentLimits(max_depth=400))  # as it was stored before the limit
    try:
        put_state(tf(2, [vpc]))
    finally:
        bounded.configure(bounded.ContentLimits())
    put_state(tf(3, [aws_vpc(cidr="10.9.0.0/16")]))
    with peak_rss_growth() as growth:
        consume()
    assert growth.mib < 100
    with db.read() as session:
        errors = list(session.scalars(select(InventoryError)))
    assert [(e.state_version, "nested more than 100 levels deep" in e.message) for e in errors] == [(2, True)]
    assert [e.action for e in events(db)] == ["create", "update"]
