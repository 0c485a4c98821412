"""tf_keras callbacks that turn fit()'s progress into reports and checkpoints.

fit() hands callbacks its logs as tensors; reading them forces a device sync, so they are read
only every logging.frequency steps and at epoch ends (`_supports_tf_logs`), which keeps the
trainer's overhead over a bare fit() small (see bench/trainer_bench.py). The one per-step hook
(Reporting's) is called directly by `TrainerCallbacks`, not through tf_keras' generic dispatch.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

import tf_keras as keras

from tftj_trainer.checkpointing import Checkpoints
from tftj_trainer.metrics import TrainerMetrics
from tftj_trainer.model import metric_key
from tftj_trainer.tensorboard_logging import SummaryLogger


def named_values(
    logs: Mapping[str, Any], names: Sequence[str], prefix: str = ""
) -> dict[str, float]:
    """Schema-named floats (`top-5-accuracy`) from fit() logs (`val_top_5_accuracy`)."""
    values: dict[str, float] = {}
    for name in names:
        key = prefix + metric_key(name)
        if key in logs:
            values[name] = float(logs[key])
    return values


class Reporting(keras.callbacks.Callback):  # type: ignore[misc]  # tf_keras is untyped
    """Prometheus gauges on every worker, TensorBoard scalars on the chief."""

    def __init__(
        self,
        *,
        metrics: TrainerMetrics,
        summaries: SummaryLogger | None,
        names: Sequence[str],
        frequency: int,
        steps_per_epoch: int,
        epochs: int,
        global_batch: int,
        schedule: Callable[[int], Any],
    ) -> None:
        super().__init__()
        self._supports_tf_logs = True
        self.schedule = schedule
        self.prom = metrics
        self.summaries = summaries
        self.names = ["loss", *[n for n in names if n != "loss"]]
        self.frequency = frequency
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.global_batch = global_batch
        self._observe_step = metrics.step_duration.observe
        self._epoch = 0
        self._step_started = 0.0
        self._window_started = 0.0
        self._window_step = 0
        self._last_report = -1
        self._next_report = 0  # global step; 0: the first step of a run is reported
        self._report_batch = -1  # the same, as a batch index of the current epoch

    def _learning_rate(self, step: int) -> float:
        # From the schedule itself: the optimizer's own view is a (mirrored) variable that is
        # only updated inside the train step.
        return float(self.schedule(step))

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch
        self._report_batch = self._next_report - epoch * self.steps_per_epoch - 1
        self._step_started = time.perf_counter()
        if self._window_started == 0.0:  # first epoch of this run (may be a resumed one)
            self._window_started = time.perf_counter()
            self._window_step = epoch * self.steps_per_epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        # Runs on every step: a clock read, a histogram bucket and one comparison.
        # A step's duration is the time since the previous step ended (or the epoch began):
        # what a step really costs, input and hooks included, and one hook per step fewer.
        now = perf_counter()
        self._observe_step(now - self._step_started)
        self._step_started = now
        # `batch` is the last batch run (every k-th with stepsPerExecution k): report once a
        # multiple of logging.frequency is reached or passed, and on a run's first step.
        if batch >= self._report_batch:
            self._report(self._epoch * self.steps_per_epoch + batch + 1, now, logs or {})

    def _report(self, step: int, now: float, logs: Mapping[str, Any]) -> None:
        first = self._last_report < 0
        self._last_report = step
        self._next_report = (step // self.frequency + 1) * self.frequency
        self._report_batch = self._next_report - self._epoch * self.steps_per_epoch - 1
        elapsed = now - self._window_started
        # The first window of a run holds graph tracing and input start-up: its rate would
        # be far below the real one and its ETA far too long, so neither is reported.
        measured = elapsed > 0 and not first
        rate = (step - self._window_step) * self.global_batch / elapsed if measured else None
        remaining = self.epochs * self.steps_per_epoch - step
        eta = remaining * self.global_batch / rate if rate else None
        self._window_started, self._window_step = now, step
        values = named_values(logs, self.names)
        lr = self._learning_rate(step)
        self.prom.set_progress(
            step=step, learning_rate=lr, examples_per_second=rate, eta_seconds=eta
        )
        self.prom.set_values(values, "train")
        if self.summaries is not None:
            extra = {"learning_rate": lr}
            if rate is not None:
                extra["examples_per_second"] = rate
            self.summaries.steps(step, {**values, **extra})

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        step = (epoch + 1) * self.steps_per_epoch
        train = named_values(logs, self.names)
        validation = named_values(logs, self.names, prefix="val_")
        self.prom.set_epoch(epoch + 1)
        self.prom.set_progress(step=step, learning_rate=self._learning_rate(step))
        self.prom.set_values(train, "train")
        self.prom.set_values(validation, "validation")
        if self.summaries is not None:
            self.summaries.epoch(
                epoch + 1, {**train, "learning_rate": self._learning_rate(step)}, validation
            )


class Checkpointing(keras.callbacks.Callback):  # type: ignore[misc]  # tf_keras is untyped
    """Save every checkpoint.frequency epochs and after the last one."""

    def __init__(
        self, checkpoints: Checkpoints, metrics: TrainerMetrics, *, frequency: int, epochs: int
    ) -> None:
        super().__init__()
        self._supports_tf_logs = True
        self.checkpoints = checkpoints
        self.prom = metrics
        self.frequency = frequency
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        done = epoch + 1
        if done % self.frequency == 0 or done == self.epochs:
            self.checkpoints.save(done)
            self.prom.checkpoint_saved()


class StopOnSignal(keras.callbacks.Callback):  # type: ignore[misc]  # tf_keras is untyped
    """SIGTERM (pod deletion, preemption, Ctrl-C in `tftj run`): stop at the next step boundary.

    The handler sets `stop_training` itself (fit() checks it after every step), so no per-step
    hook is needed. The run then ends with the PREEMPTED exit code; the latest checkpoint is the
    resume point.
    """

    def __init__(self) -> None:
        super().__init__()
        self._supports_tf_logs = True
        self.received: int | None = None
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        if self.model is not None:
            self.model.stop_training = True

    def on_train_begin(self, logs: Any = None) -> None:
        if self.received is not None:  # arrived while preparing
            self.model.stop_training = True


class TrainerCallbacks(keras.callbacks.CallbackList):  # type: ignore[misc]  # tf_keras is untyped
    """fit()'s callback list (passed as `callbacks=`), calling `per_step` on every step directly.

    As soon as one callback implements a batch hook, tf_keras' CallbackList sends every batch
    begin and end through several Python layers to every callback (timing them for its
    slow-callback warning), measurably slower than the step of a small model. Here the trainer's
    one per-step hook is called directly and left out of that dispatch; the generic path still
    runs, as before, for any other callback that implements batch hooks (none of the trainer's).
    """

    def __init__(
        self,
        callbacks: Sequence[keras.callbacks.Callback],
        *,
        per_step: keras.callbacks.Callback,
        model: keras.Model,
        epochs: int,
        steps: int,
    ) -> None:
        super().__init__(
            list(callbacks),
            add_history=True,
            add_progbar=False,
            model=model,
            verbose=0,
            epochs=epochs,
            steps=steps,
        )
        self._per_step_end = per_step.on_train_batch_end
        self._generic = [cb for cb in self.callbacks if cb is not per_step]
        self._should_call_train_batch_hooks = any(
            cb._implements_train_batch_hooks() for cb in self._generic
        )

    def _call_batch_hook_helper(self, hook_name: str, batch: int, logs: Any) -> None:
        # tf_keras' own helper (timing included, for its slow-callback warning), minus per_step.
        started = time.time() if self._check_timing else 0.0
        logs = self._process_logs(logs, is_batch_hook=True)
        for callback in self._generic:
            getattr(callback, hook_name)(batch, logs)
        if self._check_timing:
            self._hook_times.setdefault(hook_name, []).append(time.time() - started)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._per_step_end(batch, logs)
        if self._should_call_train_batch_hooks:
            self._call_batch_hook("train", "end", batch, logs=logs)

    on_batch_end = on_train_batch_end
