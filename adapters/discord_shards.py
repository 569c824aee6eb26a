"""Discord's shards: which of them this replica runs (TRENDBOT_DISCORD_SHARDS), and which shard a
server's events go to.

Discord splits a bot's servers over `count` shards, one gateway session each: a server's events
go to shard (server_id >> 22) % count, and DMs to shard 0 only
(https://discord.com/developers/docs/events/gateway#sharding). Replicas that split the shards
between them each answer their own servers; together they must run every shard exactly once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_COUNT = 1 << 16  # far beyond any bot's shards; keeps a typo from listing millions of ids
_SPEC = re.compile(r"(?P<ids>[0-9,\s-]+)/\s*(?P<count>\d+)")
USAGE = ("must be auto, or this replica's shard ids and the shard count: 0,1/4 (shards 0 and 1 of 4), "
         "2-3/4 (2 to 3 of 4)")


@dataclass(frozen=True)
class Shards:
    """The shards one replica runs: `ids` of `count`, or both None for `auto` (Discord's recommended
    count, every shard in this process)."""

    ids: tuple[int, ...] | None = None
    count: int | None = None

    @property
    def auto(self) -> bool:
        """Whether Discord picks the count and this process runs every shard."""
        return self.count is None

    def options(self) -> dict[str, Any]:
        """discord.AutoShardedClient's keyword arguments (none for `auto`: it asks Discord)."""
        return {} if self.auto else {"shard_ids": list(self.ids or ()), "shard_count": self.count}

    def runs(self, shard_id: int) -> bool:
        """Whether this replica runs that shard (with `auto`, every one)."""
        return self.auto or shard_id in (self.ids or ())

    def __str__(self) -> str:
        if self.auto:
            return "auto"
        return f"{_ranges(self.ids or ())}/{self.count}"


def as_shards(text: str) -> Shards | None:
    """TRENDBOT_DISCORD_SHARDS: empty for one connection without shards, `auto`, or ids of a count:
    `0,1/4`, `2-3/4`, `0-1,5/8`."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "auto":
        return Shards()
    m = _SPEC.fullmatch(text)
    if not m:
        raise ValueError(f"{USAGE}; got {text[:40]!r}")
    count = int(m["count"])
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"the shard count must be from 1 to {MAX_COUNT:,}")
    ids: list[int] = []
    for part in m["ids"].split(","):
        first, dash, last = part.strip().partition("-")
        if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
            raise ValueError(f"{USAGE}; {part.strip()[:20]!r} is not a shard id or a range like 2-3")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"the range {low}-{high} goes down; write {high}-{low}")
        if high >= count:
            raise ValueError(f"shard ids run from 0 to {count - 1} for {count} shards; {high} is not one")
        for shard_id in range(low, high + 1):
            if shard_id in ids:
                raise ValueError(f"shard {shard_id} is listed twice")
            ids.append(shard_id)
    return Shards(tuple(sorted(ids)), count)


def shard_of(server_id: int | None, count: int) -> int:
    """The shard that receives a server's events; DMs (no server) go to shard 0."""
    return 0 if server_id is None else (server_id >> 22) % count


def _ranges(ids: tuple[int, ...]) -> str:
    """0,1,2,5 -> 0-2,5."""
    out: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)
