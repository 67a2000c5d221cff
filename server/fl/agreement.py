"""The federated preprocessing round: platforms send aggregates, the bank agrees one encoder.

Each platform answers a `query` message with its `LocalStats` (row count, per numeric column a
fixed-bin sketch with per-bin count/sum/sum of squares, per categorical column value counts) or
a one-line refusal when its file is unusable or the run is below its policy. Statistics that
cannot come from a real table are refused too. The bank keeps the platforms that share the majority schema (same numeric and
categorical columns), refuses the others with the difference spelled out, merges the accepted
stats and builds the `Encoder` (numeric columns clipped at agreed quantiles, then standardised)
every platform then applies to its own rows.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

if TYPE_CHECKING:  # pragma: no cover
    from federation.preprocess import Encoder, LocalStats

STATS_RECORD = "yinqi-stats"
QUERY_RECORD = "yinqi-query"


@dataclass
class Agreement:
    """Outcome of the preprocessing round."""

    encoder: Encoder | None = None
    accepted: dict[int, str] = field(default_factory=dict)  # node id -> platform
    refused: dict[str, str] = field(default_factory=dict)  # platform -> reason
    rows: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)  # platform -> privacy units (merchants)
    unit: dict[str, str] = field(default_factory=dict)  # platform -> what a unit is ("merchant_id", "row")
    node_names: dict[int, str] = field(default_factory=dict)
    stats: LocalStats | None = None  # the accepted platforms' merged aggregates (the training population)


def wait_for_nodes(grid: Grid, expected: int, timeout: float) -> list[int]:
    """Node ids once `expected` nodes are connected (or whatever is there at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected or time.monotonic() >= deadline:
            return nodes
        time.sleep(0.2)


def collect_stats(grid: Grid, node_ids: list[int]) -> dict[int, dict]:
    """Ask every node for its aggregates; {node id: reply dict (platform, stats | refused)}."""
    messages = [
        Message(
            content=RecordDict({QUERY_RECORD: ConfigRecord({"what": "stats"})}),
            dst_node_id=nid,
            message_type=MessageType.QUERY,
            group_id="preprocess",
        )
        for nid in node_ids
    ]
    replies: dict[int, dict] = {
        nid: {"platform": f"node-{nid}", "refused": "no reply to the statistics query"} for nid in node_ids
    }
    for reply in grid.send_and_receive(messages):
        nid = reply.metadata.src_node_id
        if reply.has_error():
            replies[nid] = {
                "platform": f"node-{nid}",
                "refused": f"ClientApp error: {(reply.error.reason or '')[:300]}",
            }
        else:
            replies[nid] = dict(reply.content.config_records[STATS_RECORD])
    return replies


def _describe(stats: LocalStats) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(sorted(stats.numeric)), tuple(sorted(stats.categorical))


def agree(replies: dict[int, dict], max_categories: int = 50) -> Agreement:
    """Keep the majority schema, refuse the rest, merge stats and build the encoder."""
    from federation.errors import DataError
    from federation.preprocess import Encoder, LocalStats, merge_stats

    out = Agreement()
    parsed = {}
    for nid, reply in sorted(replies.items()):
        name = str(reply.get("platform", f"node-{nid}"))
        out.node_names[nid] = name
        if "refused" in reply:
            out.refused[name] = str(reply["refused"])
            continue
        try:
            stats = LocalStats.from_dict(json.loads(str(reply["stats"])), who=name)
        except (DataError, ValueError) as exc:  # a careless or hostile platform's aggregates
            out.refused[name] = str(exc) if isinstance(exc, DataError) else f"{name} sent statistics that are not JSON"
            continue
        parsed[nid] = (name, stats)
    if not parsed:
        return out
    schemas = Counter(_describe(stats) for _, stats in parsed.values())
    majority = schemas.most_common(1)[0][0]  # ties: the schema seen first
    for nid, (name, stats) in parsed.items():
        numeric, categorical = _describe(stats)
        if (numeric, categorical) == majority:
            out.accepted[nid] = name
            out.rows[name] = stats.rows
            out.units[name] = stats.units
            out.unit[name] = stats.unit
            continue
        wrong_kind = sorted((set(numeric) & set(majority[1])) | (set(categorical) & set(majority[0])))
        missing = sorted((set(majority[0]) | set(majority[1])) - set(numeric) - set(categorical))
        extra = sorted((set(numeric) | set(categorical)) - set(majority[0]) - set(majority[1]))
        source = ", ".join(stats.sources) or name
        if wrong_kind:
            column = wrong_kind[0]
            kind = "text" if column in categorical else "numeric"
            reason = f"{source}, column '{column}': {kind} here but {'numeric' if kind == 'text' else 'text'} on the other platforms (wrong type)"
        elif missing:
            reason = f"{source}, column '{missing[0]}': missing; the other platforms have it"
        else:
            reason = f"{source}, column '{extra[0]}': not present on the other platforms"
        out.refused[name] = reason
    merged = merge_stats([parsed[nid][1] for nid in out.accepted])
    out.encoder = Encoder.from_stats(merged, max_categories=max_categories)
    out.stats = merged
    return out
