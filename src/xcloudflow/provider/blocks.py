"""Nested block kinds the `tf` package does not ship: LIST and SINGLE nesting.

`tf` 1.2 implements only SET blocks (`tf.blocks.SetNestedBlock`), whose equality ignores nested
blocks. The seed's schemas need `retention_policy { strategy, rules { type, keep } }` (one block
holding an ordered list of blocks) and ordered `rule { ... }` blocks, so this module adds the two
nesting modes on top of `tf.schema.NestedBlock`, reusing the package's own state codecs. It must stay
a thin adapter: no resource logic here.
"""

from __future__ import annotations

from typing import Any

from tf.gen import tfplugin_pb2 as pb
from tf.provider import _decode_state, _encode_state_d
from tf.schema import Block, NestedBlock, NestMode
from tf.types import Unknown
from tf.utils import Diagnostics


def _known(value: Any) -> bool:
    return value is not None and value is not Unknown


class ListNestedBlock(NestedBlock):  # type: ignore[misc]
    """Repeated blocks kept in the order they are written; Python value: list of dicts."""

    def __init__(
        self, type_name: str, block: Block, *, min_items: int | None = None, max_items: int | None = None
    ) -> None:
        super().__init__(type_name, NestMode.Set, block, min_items=min_items, max_items=max_items)

    def to_pb(self) -> Any:
        return pb.Schema.NestedBlock(
            type_name=self.type_name,
            block=self.block.to_pb(),
            nesting=pb.Schema.NestedBlock.NestingMode.LIST,
            min_items=self.min_items or 0,
            max_items=self.max_items or 0,
        )

    def encode(self, value: Any) -> Any:
        if not _known(value):
            return value
        return [_encode_state_d(self._amap(), self._bmap(), item, None) for item in value]

    def decode(self, value: Any) -> Any:
        if not _known(value):
            return value
        diags = Diagnostics()
        return [_decode_state(diags, self._amap(), self._bmap(), item)[1] for item in value]

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return bool(a_decoded == b_decoded)


class SingleNestedBlock(NestedBlock):  # type: ignore[misc]
    """At most one block; Python value: a dict, or None when the block is absent."""

    def __init__(self, type_name: str, block: Block) -> None:
        super().__init__(type_name, NestMode.Single, block)

    def to_pb(self) -> Any:
        return pb.Schema.NestedBlock(
            type_name=self.type_name,
            block=self.block.to_pb(),
            nesting=pb.Schema.NestedBlock.NestingMode.SINGLE,
        )

    def encode(self, value: Any) -> Any:
        if not _known(value):
            return value
        return _encode_state_d(self._amap(), self._bmap(), value, None)

    def decode(self, value: Any) -> Any:
        if not _known(value):
            return value
        return _decode_state(Diagnostics(), self._amap(), self._bmap(), value)[1]

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return bool(a_decoded == b_decoded)
