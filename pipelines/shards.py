"""Companies map to 32 static shards by a stable hash of their match key
(docs/architecture.md#shards)."""

from __future__ import annotations

import hashlib

SHARD_COUNT = 32
SHARD_KEYS = [f"{i:02d}" for i in range(SHARD_COUNT)]


def shard_of(match_key: str) -> int:
    """The shard of a company: stable across processes, Python versions and machines."""
    digest = hashlib.sha256(match_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % SHARD_COUNT


def shard_key(shard: int) -> str:
    """The Dagster partition key of a shard ("00" … "31")."""
    return SHARD_KEYS[shard]


def shards_of_keys(keys: list[str] | tuple[str, ...]) -> list[int]:
    return sorted({int(k) for k in keys})
