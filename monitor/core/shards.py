"""Detection shards: where a model's summaries go, and which shard judges which subject.

The summaries topic is keyed by model, so all of a model's versions meet in one detection stage (rollback
compares them). With ``detection.shards`` above 1 a model's input features are split over that many
detection stages, so one model's detection can use several replicas' cores: shard 0 judges the model version
as a whole (prediction drift, latency, labels, fairness, decisions); each shard judges its share of the
features (their drift and their schema and quality checks). docs/engine-v2.md says what a shard cannot see
of the others.
"""

from __future__ import annotations

import zlib

# The rule a profile stage cut a summary by, carried in the summaries of a model cut into shards: 2, each shard
# gets its own features' columns, shared by crc32 mod S (:func:`shard_of`). Summaries without it were cut by
# the rule before (every column to shard 0, features by crc32 mod 2S - 1): a stage drops them as misrouted.
SHARD_CUT = 2


def summaries_partition(model: str, partitions: int, shard: int = 0, shards: int = 1) -> int:
    """The summaries partition, hence the detection stage, of one shard of a model's summaries. Every version
    of a model goes to the same one: a new version is judged against the one before it (rollback), which needs
    both in one engine. A model's shards (see :func:`shard_of`) go ``partitions // shards`` apart, so that
    consumers given consecutive partitions (Kafka's range assignor) hold different shards.

    >>> summaries_partition("churn", 6) == summaries_partition("churn", 6)
    True
    >>> (summaries_partition("churn", 6, 1, 2) - summaries_partition("churn", 6, 0, 2)) % 6
    3
    """
    partitions = max(1, partitions)
    shards = effective_shards(shards, partitions)
    return (zlib.crc32(model.encode()) + (shard % shards) * (partitions // shards)) % partitions


def effective_shards(shards: int, partitions: int) -> int:
    """Shards in use: at most one per summaries partition, so each shard of a model has a stage of its own."""
    return max(1, min(shards, partitions))


def shard_of(model: str, feature: str, shards: int) -> int:
    """The detection shard that judges an input feature (its drift and its schema and quality checks): a hash
    of (model, feature), taken modulo ``shards``. Shard 0 also holds what looks at a model version as a whole
    (prediction drift, latency, labels, fairness and decisions): about one feature's work more than another
    shard, so it gets the same share of features.

    >>> round(sum(shard_of("m", f"x{i}", 2) == 0 for i in range(3000)) / 3000, 1)  # of two shards
    0.5
    """
    if shards <= 1:
        return 0
    return zlib.crc32(f"{model}\x00{feature}".encode()) % shards


def shard_here(model: str, partition: int, partitions: int, shards: int) -> int:
    """The shard of ``model`` that summaries partition ``partition`` holds (0 when it holds none)."""
    shards = effective_shards(shards, partitions)
    for shard in range(shards):
        if summaries_partition(model, partitions, shard, shards) == partition:
            return shard
    return 0
