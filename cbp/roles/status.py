"""What a node has done so far, as one frozen snapshot: what tests, the demo and the command line
read of a running node, instead of the node's own (mutable, still changing) attributes.

Invariants: a snapshot is a copy taken at one moment; nothing in it changes when the node goes
on, and nothing written to it reaches the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from cbp.pool import PoolRow
from ven import VenError

from .statement import ReceivedStatement

if TYPE_CHECKING:
    from .aggregator import AggregatorNode

__all__ = ["AggregatorStatus"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorStatus:
    """An aggregator node at one moment.

    ``closed_until``: the last sample closed into a pool row (None before the first);
    ``pool_rows`` and ``baselines``: every row and baseline built so far (``baselines`` counted);
    ``msp_sent``: per TSO eventID, how many devices' metering was sent; ``statements``: the TSO's
    settlement statement per eventID; ``unsent``: the sample times of rows held back while the
    TSO link is down, ``late`` those of them that will go marked late; ``errors``: what the TSO
    link refused, in order.
    """

    closed_until: datetime | None
    pool_rows: tuple[PoolRow, ...]
    baselines: int
    msp_sent: Mapping[str, int]
    statements: Mapping[str, ReceivedStatement]
    unsent: tuple[datetime, ...]
    late: frozenset[datetime]
    errors: tuple[VenError, ...]

    @classmethod
    def of(cls, node: AggregatorNode) -> AggregatorStatus:
        return cls(
            closed_until=node.closed_until, pool_rows=tuple(node.pool_rows),
            baselines=len(node.baselines), msp_sent=MappingProxyType(dict(node.msp_sent)),
            statements=MappingProxyType(dict(node.statements)),
            unsent=tuple(row.at for row in node.unsent.rows), late=frozenset(node.unsent.late),
            errors=tuple(node.errors))
