"""tftj.trainerprogress: a trainer's /metrics read back as progress."""

from __future__ import annotations

from tftj.trainerprogress import parse_trainer_metrics

METRICS = """\
# TYPE tftj_trainer_epoch gauge
tftj_trainer_epoch{job="j",worker="0"} 2
tftj_trainer_epochs_target{job="j",worker="0"} 5
tftj_trainer_step{job="j",worker="0"} 100
tftj_trainer_loss{split="train"} 0.25
tftj_trainer_loss{split="validation"} 0.5
tftj_trainer_metric{name="accuracy",split="validation"} 0.9
tftj_trainer_examples_per_second 512.25
tftj_trainer_eta_seconds 61.6
process_cpu_seconds_total 3
"""


def test_progress_from_trainer_metrics() -> None:
    progress = parse_trainer_metrics(METRICS)
    assert progress is not None
    assert progress.to_status() == {
        "epoch": 2,
        "totalEpochs": 5,
        "step": 100,
        "loss": 0.25,
        "metrics": {"val_accuracy": 0.9, "val_loss": 0.5},
        "examplesPerSecond": 512.25,
        "etaSeconds": 62,
    }


def test_progress_absent_before_training() -> None:
    assert parse_trainer_metrics("process_cpu_seconds_total 3\n") is None
