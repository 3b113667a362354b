"""The 32 static shards as Dagster partitions, and how a run names a range of them."""

from __future__ import annotations

import warnings

import dagster as dg

from pipelines.shards import SHARD_KEYS

# zizhi deliberately uses BackfillPolicy.single_run() (one run covers many shards), which the
# pinned Dagster release labels beta; the warning says nothing an operator can act on.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

shard_partitions = dg.StaticPartitionsDefinition(SHARD_KEYS)

# A schedule or backfill covers many shards in one run (BackfillPolicy.single_run()).
single_run = dg.BackfillPolicy.single_run()

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str = SHARD_KEYS[0], last: str = SHARD_KEYS[-1]) -> dict[str, str]:
    """Run tags that make one run cover shards `first`..`last` (all shards by default)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}
