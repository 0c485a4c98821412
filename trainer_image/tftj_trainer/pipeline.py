"""The tail every input pipeline shares: cache, shuffle, repeat, batch, decode, prefetch.

The dataset repeats and callers bound each epoch with a step count: every worker then runs the
same number of steps whatever the size of its shard, which collective ops require.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tftj.api.resolve import ResolvedParameters

Decode = Callable[[Any], tuple[Any, Any]]


def batched(
    dataset: Any,
    params: ResolvedParameters,
    *,
    training: bool,
    batch_size: int,
    shuffle_limit: int | None,
    decode: Decode,
) -> Any:
    """`dataset` of undecoded elements -> repeated (features, labels) batches of `batch_size`.

    Elements are decoded a batch at a time (one parse op per batch, not per example), after
    the shuffle, so the shuffle buffer holds compact raw records. `shuffle_limit` caps the
    buffer when the element count is known and smaller (no point holding more).
    """
    import tensorflow as tf

    spec = params.spec
    data = spec.data
    if data.cache:  # opt-in: holds this worker's whole shard in memory after the first pass
        dataset = dataset.cache()
    if training and data.shuffle:
        buffer = (
            data.shuffle_buffer
            if shuffle_limit is None
            else min(data.shuffle_buffer, shuffle_limit)
        )
        dataset = dataset.shuffle(
            max(1, buffer), seed=spec.training.seed, reshuffle_each_iteration=True
        )
    units = spec.model.output_units or 1
    one_hot = spec.training.loss == "categorical-crossentropy"

    def decoded(*batch: Any) -> tuple[Any, Any]:  # one tensor, or a (features, labels) pair
        features, labels = decode(batch[0] if len(batch) == 1 else batch)
        if one_hot:
            labels = tf.one_hot(tf.cast(labels, tf.int32), units)
        return features, labels

    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)
    dataset = dataset.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Sharding is done from the job's own policy; tf.data must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
