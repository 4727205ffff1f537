"""Inventory I/O models: resources, their events, dependency graphs, blast radius, parse errors.

Read models only: the inventory is written by the consumer, never through the API. Attributes in
these answers are the redacted form stored at ingest; nothing here sees a secret in clear.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Direction = Literal["downstream", "upstream"]
GraphFormat = Literal["json", "dot", "mermaid"]


class ResourceOut(BaseModel):
    """One resource in a listing (no attributes: they can be large)."""

    stable_uid: uuid.UUID
    tool: str
    project: str
    stack: str
    kind: str
    provider: str
    type: str
    addr: str
    cloud: str | None
    region: str | None
    global_id: str | None
    updated_at: datetime
    deleted_at: datetime | None


class ResourcePage(BaseModel):
    items: list[ResourceOut]
    next_cursor: str | None


class LinkedResource(BaseModel):
    """The other end of a dependency edge, seen from a resource."""

    stable_uid: uuid.UUID
    kind: str = Field(description="edge kind: depends_on, parent, provider or ref")
    addr: str | None = Field(description="null when the other end is not in the inventory")
    tool: str | None
    project: str | None
    stack: str | None
    type: str | None


class ResourceDetail(ResourceOut):
    native_id: str | None
    attrs: dict[str, Any]
    attrs_hash: str
    state_version: int
    last_run_id: uuid.UUID
    created_at: datetime
    depends_on: list[LinkedResource] = Field(description="what this resource depends on")
    dependents: list[LinkedResource] = Field(description="what depends on this resource")


class EventOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    stable_uid: uuid.UUID
    action: str
    addr: str
    tool: str
    project: str
    stack: str
    provider: str
    type: str
    cloud: str | None
    region: str | None
    state_version: int
    at: datetime
    before_hash: str | None
    after_hash: str | None
    patch_json: list[dict[str, Any]] | None = Field(description="RFC 6902 patch, old attributes to new")


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class EventCount(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD")
    action: str
    count: int


class BlastRadiusNode(BaseModel):
    stable_uid: uuid.UUID
    depth: int = Field(description="0 for the root, else the length of the shortest path to it")
    kind: str | None = Field(description="kind of the edge by which it was reached (null for the root)")
    addr: str
    tool: str
    project: str
    stack: str
    type: str


class BlastRadius(BaseModel):
    root: uuid.UUID
    direction: Direction
    max_depth: int
    items: list[BlastRadiusNode]


class GraphNode(BaseModel):
    stable_uid: uuid.UUID
    addr: str
    tool: str
    project: str
    stack: str
    type: str
    kind: str
    external: bool = Field(description="outside the selected stacks, shown for a cross-stack edge")


class GraphEdge(BaseModel):
    src: uuid.UUID = Field(description="the resource that depends")
    dst: uuid.UUID = Field(description="the resource it depends on")
    kind: str


class Graph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class InventoryErrorOut(BaseModel):
    tool: str | None
    project: str | None
    stack: str | None
    state_version: int
    message: str
    at: datetime
