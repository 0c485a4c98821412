"""`tftj run`'s progress line: nothing shown before the trainer knows its plan, no rate or ETA
before one was measured, and a line that always fits the terminal."""

from __future__ import annotations

import pytest
from tftj.localrun.progress import progress_line
from tftj.trainerprogress import TrainerProgress, parse_trainer_metrics

# What a worker serves between starting its metrics server and knowing its plan: every series
# created at 0 (prometheus_client creates labelled children at 0).
STARTING = """\
tftj_trainer_epoch{job="j",worker="0"} 0
tftj_trainer_epochs_target{job="j",worker="0"} 0
tftj_trainer_step{job="j",worker="0"} 0
tftj_trainer_steps_target{job="j",worker="0"} 0
tftj_trainer_examples_per_second{job="j",worker="0"} 0
tftj_trainer_eta_seconds{job="j",worker="0"} 0
"""
# Planned, first step done, no rate measured yet (the first window is start-up).
FIRST_STEP = (
    STARTING.replace('epochs_target{job="j",worker="0"} 0', 'epochs_target{job="j",worker="0"} 15')
    .replace('steps_target{job="j",worker="0"} 0', 'steps_target{job="j",worker="0"} 390')
    .replace('tftj_trainer_step{job="j",worker="0"} 0', 'tftj_trainer_step{job="j",worker="0"} 1')
)

RUNNING = TrainerProgress(
    epoch=7,
    epochs=15,
    step=182,
    steps=390,
    loss=0.123456,
    examples_per_second=12345.6,
    eta_seconds=3725,
    resumed_from_epoch=0,
)


def test_no_progress_before_the_plan_is_known() -> None:
    assert parse_trainer_metrics(STARTING) is None


def test_no_rate_or_eta_before_one_was_measured() -> None:
    progress = parse_trainer_metrics(FIRST_STEP)
    assert progress is not None
    assert (progress.epochs, progress.step, progress.steps) == (15, 1, 390)
    assert progress.examples_per_second is None and progress.eta_seconds is None
    line = progress_line(progress, 120)
    assert "epoch 0/15" in line and "step 1/390" in line
    assert "ETA" not in line and "ex/s" not in line and "0/0" not in line


def test_a_wide_terminal_gets_everything() -> None:
    line = progress_line(RUNNING, 120)
    assert line == (
        "[#########-----------] epoch 7/15 step 182/390 loss 0.1235 12,346 ex/s ETA 1:02:05"
    )


@pytest.mark.parametrize("columns", range(1, 121))
def test_the_line_fits_every_width_and_keeps_the_epoch_longest(columns: int) -> None:
    line = progress_line(RUNNING, columns)
    assert len(line) <= max(1, columns - 1)
    if columns > len("epoch 7/15"):
        assert "epoch 7/15" in line
    if "ex/s" in line or "step" in line:
        assert "ETA 1:02:05" in line  # the ETA outlives the throughput and the step count
