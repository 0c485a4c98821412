"""The local runner's view of progress: read from the chief's /metrics and drawn as one line."""

from __future__ import annotations

from tftj.trainerprogress import TrainerProgress, read_trainer_progress


def read_progress(port: int, timeout: float = 1.0) -> TrainerProgress | None:
    """The local chief's progress, or None while its /metrics is not up (or not readable)."""
    return read_trainer_progress("127.0.0.1", port, timeout)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(p: TrainerProgress, width: int = 20) -> str:
    """`[#######-------------] epoch 3/10 step 120/400 loss 0.4312 5,120 ex/s ETA 0:00:12`"""
    done = p.step / p.steps if p.steps else p.epoch / max(1, p.epochs)
    filled = min(width, int(done * width))
    parts = [
        f"[{'#' * filled}{'-' * (width - filled)}]",
        f"epoch {p.epoch}/{p.epochs}",
        f"step {p.step}/{p.steps}" if p.steps else f"step {p.step}",
    ]
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.examples_per_second is not None:
        parts.append(f"{p.examples_per_second:,.0f} ex/s")
    if p.eta_seconds is not None:
        parts.append(f"ETA {duration(p.eta_seconds)}")
    return " ".join(parts)


def summary_line(p: TrainerProgress) -> str:
    """`epoch 20/20: accuracy 0.9950, loss 0.0353, val_accuracy 0.9722, val_loss 0.1020`"""
    named = dict(p.metrics)
    if p.loss is not None:
        named["loss"] = p.loss
    shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(named.items()))
    return f"epoch {p.epoch}/{p.epochs}: {shown}"
