"""One worker's training run, from resolved parameters to exported model.

`prepare()` builds everything (data, model, optimizer, callbacks) without training, so tests can
inspect what the parameters produce; `train()` restores, fits, and exports.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tf_keras as keras
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.callbacks import Checkpointing, Reporting, StopOnSignal, TrainerCallbacks
from tftj_trainer.checkpointing import Checkpoints
from tftj_trainer.cluster import Cluster
from tftj_trainer.config import StoragePaths
from tftj_trainer.data import (
    InputData,
    Split,
    check_shards,
    effective_shard_policy,
    load_input,
    steps_for,
)
from tftj_trainer.exitcodes import DataError, PreemptedError
from tftj_trainer.export import export_model
from tftj_trainer.metrics import TrainerMetrics
from tftj_trainer.model import build_model, compile_model, set_precision
from tftj_trainer.optimization import (
    ScheduleSteps,
    WarmupSchedule,
    learning_rate_schedule,
    make_optimizer,
    schedule_steps,
)
from tftj_trainer.tensorboard_logging import SummaryLogger

log = logging.getLogger("tftj_trainer")


@dataclass
class Prepared:
    """Everything the parameters turn into before the first step."""

    model: keras.Model
    input: InputData
    shard_policy: str
    validation_policy: str
    steps: ScheduleSteps
    validation_steps: int | None
    train_data: Any
    validation_data: Any
    precision: keras.mixed_precision.Policy
    schedule: WarmupSchedule


def dataset_fn(split: Split, params: ResolvedParameters, *, training: bool, policy: str) -> Any:
    """A tf.distribute dataset function: this input pipeline's shard, per-replica batches."""
    batch = params.spec.training.batch_size

    def build(context: tf.distribute.InputContext) -> Any:
        return split.dataset(
            params,
            policy=policy,
            workers=context.num_input_pipelines,
            index=context.input_pipeline_id,
            batch_size=context.get_per_replica_batch_size(batch),
            training=training,
        )

    return build


def distribute(strategy: Any, cluster: Cluster, fn: Any) -> Any:
    if cluster.distributed:
        return strategy.distribute_datasets_from_function(fn)
    return fn(tf.distribute.InputContext())  # one worker: a plain dataset, no wrapping


# What the input pipeline raises on data it cannot read or parse, or that fails its checks.
INPUT_ERRORS = (
    tf.errors.InvalidArgumentError,
    tf.errors.DataLossError,
    tf.errors.NotFoundError,
    tf.errors.PermissionDeniedError,
)


def bad_data(p: Prepared, cluster: Cluster) -> DataError | None:
    """After a TensorFlow error in training: the record of this worker's data behind it, named
    by re-reading its shard (None: the data is fine, the error came from elsewhere)."""
    sides = ((p.input.train, p.shard_policy), (p.input.validation, p.validation_policy))
    for split, policy in sides:
        found = None if split is None else split.explain(policy, cluster.size, cluster.index)
        if found is not None:
            return found
    return None


def weights_digest(model: keras.Model) -> str:
    """A short hash of all weights: equal on every worker when training stayed in sync."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def prepare(params: ResolvedParameters, cluster: Cluster, strategy: Any) -> Prepared:
    spec = params.spec
    training = spec.training
    keras.utils.set_random_seed(training.seed)
    precision = set_precision(training.precision)
    data = load_input(params)
    policy = effective_shard_policy(spec.data.shard_policy, data.train.num_files, cluster.size)
    check_shards(data.train, policy, cluster.size)
    if training.steps_per_epoch is not None:
        steps_per_epoch = training.steps_per_epoch
    else:
        assert data.train.examples is not None  # counted whenever stepsPerEpoch is unset
        steps_per_epoch = steps_for(data.train.examples, training.batch_size)
    steps = schedule_steps(training, steps_per_epoch)
    validation_steps = None
    validation_data = None
    validation_policy = policy
    if data.validation is not None and data.validation.examples:
        # Fewer validation files than workers: split them by record instead.
        if policy == "file" and data.validation.num_files < cluster.size:
            validation_policy = "data"
        check_shards(data.validation, validation_policy, cluster.size)
        validation_steps = steps_for(data.validation.examples, training.batch_size)
        validation_data = distribute(
            strategy,
            cluster,
            dataset_fn(data.validation, params, training=False, policy=validation_policy),
        )
    train_data = distribute(
        strategy, cluster, dataset_fn(data.train, params, training=True, policy=policy)
    )
    with strategy.scope():
        model = build_model(data.num_features, params, data.statistics)
        schedule = learning_rate_schedule(
            training.schedule, params.derived.effective_learning_rate, steps
        )
        optimizer = make_optimizer(training, schedule)
        compile_model(model, params, optimizer)
    return Prepared(
        model,
        data,
        policy,
        validation_policy,
        steps,
        validation_steps,
        train_data,
        validation_data,
        precision,
        schedule,
    )


def make_callbacks(
    params: ResolvedParameters,
    p: Prepared,
    metrics: TrainerMetrics,
    summaries: SummaryLogger | None,
    checkpoints: Checkpoints,
    stop: StopOnSignal,
) -> list[keras.callbacks.Callback]:
    spec = params.spec
    training = spec.training
    return [
        Reporting(
            metrics=metrics,
            summaries=summaries,
            names=training.metrics or ["loss"],
            frequency=spec.logging.frequency,
            steps_per_epoch=p.steps.steps_per_epoch,
            epochs=training.epochs,
            global_batch=training.batch_size,
            schedule=p.schedule,
        ),
        Checkpointing(
            checkpoints, metrics, frequency=spec.checkpoint.frequency, epochs=training.epochs
        ),
        stop,
    ]


def train(
    params: ResolvedParameters,
    paths: StoragePaths,
    cluster: Cluster,
    strategy: Any,
    metrics: TrainerMetrics,
    attempt: int,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> keras.Model:
    """Train (resuming from the latest checkpoint) and export; returns the trained model.

    `extra_callbacks` run after the trainer's own, so they see the full cost of each epoch
    (bench/trainer_bench.py times it)."""
    spec = params.spec
    training = spec.training
    stop = StopOnSignal()
    p = prepare(params, cluster, strategy)
    metrics.set_run(
        attempt=attempt,
        epochs=training.epochs,
        steps=p.steps.total_steps,
        parameters_hash=params.parameters_hash,
        strategy=type(strategy).__name__,
    )
    checkpoints = Checkpoints(
        p.model,
        paths.checkpoints,
        is_chief=cluster.is_chief,
        worker=cluster.index,
        max_to_keep=spec.checkpoint.max_to_keep,
    )
    summaries = None
    try:
        start_epoch = checkpoints.restore()
        metrics.set_resumed(start_epoch)
        metrics.set_progress(step=start_epoch * p.steps.steps_per_epoch)
        log.info(
            "worker %d/%d: %d training / %d validation examples, %d features, shard policy %s, "
            "%d steps per epoch, starting at epoch %d of %d",
            cluster.index,
            cluster.size,
            p.input.train.examples or 0,
            (p.input.validation.examples or 0) if p.input.validation is not None else 0,
            p.input.num_features,
            p.shard_policy,
            p.steps.steps_per_epoch,
            start_epoch,
            training.epochs,
        )
        if cluster.is_chief:
            summaries = SummaryLogger(paths.logs, params, training.metrics or ["loss"])
        own = make_callbacks(params, p, metrics, summaries, checkpoints, stop)
        reporting = next(c for c in own if isinstance(c, Reporting))
        callbacks = TrainerCallbacks(
            [*own, *extra_callbacks],
            per_step=reporting,
            model=p.model,
            epochs=training.epochs,
            steps=p.steps.steps_per_epoch,
        )
        if start_epoch < training.epochs:
            try:
                p.model.fit(
                    p.train_data,
                    epochs=training.epochs,
                    initial_epoch=start_epoch,
                    steps_per_epoch=p.steps.steps_per_epoch,
                    validation_data=p.validation_data,
                    validation_steps=p.validation_steps,
                    callbacks=callbacks,
                    verbose=0,
                )
            except INPUT_ERRORS:
                found = bad_data(p, cluster)
                if found is None:
                    raise
                raise found from None
        if stop.received is not None:
            raise PreemptedError(
                f"stopped by signal {stop.received} during training; resume "
                "from the latest checkpoint"
            )
        log.info("worker %d: final weights digest %s", cluster.index, weights_digest(p.model))
        if spec.export.enabled:
            export_model(
                p.model,
                paths.export,
                input_dim=p.input.num_features,
                task=spec.model.task,
                is_chief=cluster.is_chief,
                worker=cluster.index,
            )
    finally:
        if summaries is not None:
            summaries.close()
        checkpoints.close()
    return p.model
