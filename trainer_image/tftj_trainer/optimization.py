"""The optimizer from training.optimizer/optimizerParams, the learning-rate schedule with warmup,
and gradient clipping. Everything here is a tf_keras object; nothing reads files or the cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tf_keras as keras
from tftj.api.models import Schedule, Training


@dataclass(frozen=True)
class ScheduleSteps:
    """The schedule's step counts, known once the data (hence steps per epoch) is known."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def schedule_steps(training: Training, steps_per_epoch: int) -> ScheduleSteps:
    # Same arithmetic as tftj.api.resolve.derive, which can only do it for synthetic data.
    return ScheduleSteps(
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * training.epochs,
        warmup_steps=round(training.schedule.warmup_epochs * steps_per_epoch),
    )


@keras.utils.register_keras_serializable(package="tftj")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """Linear warmup from 0 to `rate` over `warmup_steps`, then constant/cosine/exponential/step.

    One schedule object for all four types so its config is a plain dict of the schema's values
    (it shows up as such in the SavedModel and in `get_config()`).
    """

    def __init__(
        self,
        rate: float,
        kind: str,
        warmup_steps: int,
        total_steps: int,
        steps_per_epoch: int,
        decay_rate: float,
        decay_epochs: float,
        min_rate: float,
    ) -> None:
        super().__init__()
        self.rate = rate
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.decay_rate = decay_rate
        self.decay_epochs = decay_epochs
        self.min_rate = min_rate

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.rate, tf.float32)
        warmup = float(self.warmup_steps)
        after = tf.maximum(step - warmup, 0.0)  # steps since warmup ended
        if self.kind == "cosine":
            span = float(max(1, self.total_steps - self.warmup_steps))
            progress = tf.minimum(after / span, 1.0)
            decayed = self.min_rate + (rate - self.min_rate) * 0.5 * (
                1.0 + tf.cos(math.pi * progress)
            )
        elif self.kind in ("exponential", "step"):
            periods = after / (self.decay_epochs * self.steps_per_epoch)
            if self.kind == "step":
                periods = tf.floor(periods)
            decayed = rate * tf.pow(self.decay_rate, periods)
        else:
            decayed = rate
        if self.warmup_steps > 0:
            return tf.where(step < warmup, rate * (step + 1.0) / warmup, decayed)
        return decayed

    def get_config(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kind": self.kind,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "decay_rate": self.decay_rate,
            "decay_epochs": self.decay_epochs,
            "min_rate": self.min_rate,
        }


def learning_rate_schedule(schedule: Schedule, rate: float, steps: ScheduleSteps) -> WarmupSchedule:
    return WarmupSchedule(
        rate=rate,
        kind=schedule.type,
        warmup_steps=steps.warmup_steps,
        total_steps=steps.total_steps,
        steps_per_epoch=steps.steps_per_epoch,
        decay_rate=schedule.decay_rate,
        decay_epochs=schedule.decay_epochs,
        min_rate=schedule.min_learning_rate,
    )


def make_optimizer(training: Training, schedule: WarmupSchedule) -> keras.optimizers.Optimizer:
    """The optimizer with every optimizerParams value resolve() filled in, schedule and clipping."""
    p = training.optimizer_params
    # A constant rate without warmup is passed as a number: a schedule object would add its ops
    # to every step for nothing (measurable on small models, see bench/trainer_bench.py).
    lr: WarmupSchedule | float = (
        schedule.rate if schedule.kind == "constant" and schedule.warmup_steps == 0 else schedule
    )
    # global_clipnorm: the schema promises clipping by the GLOBAL L2 norm of all gradients.
    common: dict[str, Any] = {"learning_rate": lr, "global_clipnorm": training.gradient_clip_norm}
    name = training.optimizer
    if name == "sgd":
        return keras.optimizers.SGD(**common)
    if name == "momentum":
        return keras.optimizers.SGD(momentum=p.momentum, nesterov=p.nesterov, **common)
    if name == "adam":
        return keras.optimizers.Adam(
            beta_1=p.beta1, beta_2=p.beta2, epsilon=p.epsilon, amsgrad=p.amsgrad, **common
        )
    if name == "adamw":
        return keras.optimizers.AdamW(
            weight_decay=p.weight_decay,
            beta_1=p.beta1,
            beta_2=p.beta2,
            epsilon=p.epsilon,
            amsgrad=p.amsgrad,
            **common,
        )
    if name == "nadam":
        return keras.optimizers.Nadam(beta_1=p.beta1, beta_2=p.beta2, epsilon=p.epsilon, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(
            rho=p.rho, momentum=p.momentum, epsilon=p.epsilon, centered=p.centered, **common
        )
    if name == "adagrad":
        return keras.optimizers.Adagrad(
            initial_accumulator_value=p.initial_accumulator_value, epsilon=p.epsilon, **common
        )
    raise ValueError(f"unknown optimizer {name!r}")  # unreachable: the schema's Literal
