"""The local runner's view of progress: read from the chief's /metrics and drawn as one line."""

from __future__ import annotations

from tftj.trainerprogress import TrainerProgress, read_trainer_progress


def read_progress(port: int, timeout: float = 1.0) -> TrainerProgress | None:
    """The local chief's progress, or None while its /metrics is not up (or not readable)."""
    return read_trainer_progress("127.0.0.1", port, timeout)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


BAR_WIDTH = 20
MIN_BAR_WIDTH = 10


def progress_line(p: TrainerProgress, columns: int = 80) -> str:
    """`[#######-------------] epoch 3/10 step 120/400 loss 0.4312 5,120 ex/s ETA 0:00:12`,
    shortened to fit `columns` (a terminal wraps a longer line, and `\r` then redraws only its
    last row): the bar narrows, then goes, then the least useful parts go, epoch last."""
    done = p.step / p.steps if p.steps else p.epoch / max(1, p.epochs)
    # Most to least useful; the bar is drawn in front of whatever fits.
    parts = [f"epoch {p.epoch}/{p.epochs}"]
    if p.eta_seconds is not None:
        parts.append(f"ETA {duration(p.eta_seconds)}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    parts.append(f"step {p.step}/{p.steps}" if p.steps else f"step {p.step}")
    if p.examples_per_second is not None:
        parts.append(f"{p.examples_per_second:,.0f} ex/s")
    order = ["epoch", "step", "loss", "ex/s", "ETA"]  # the order they are printed in

    def key(part: str) -> int:
        return next(i for i, word in enumerate(order) if word in part)

    # The last column stays free: writing into it makes some terminals wrap.
    room = max(1, columns - 1)
    for kept in range(len(parts), 0, -1):
        text = " ".join(sorted(parts[:kept], key=key))
        bar_room = room - len(text) - 3  # "[", "]" and a space
        if bar_room >= MIN_BAR_WIDTH:
            width = min(BAR_WIDTH, bar_room)
            filled = min(width, int(done * width))
            return f"[{'#' * filled}{'-' * (width - filled)}] {text}"
        if len(text) <= room:
            return text
    return parts[0][:room]


def summary_line(p: TrainerProgress) -> str:
    """`epoch 20/20: accuracy 0.9950, loss 0.0353, val_accuracy 0.9722, val_loss 0.1020`"""
    named = dict(p.metrics)
    if p.loss is not None:
        named["loss"] = p.loss
    shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(named.items()))
    return f"epoch {p.epoch}/{p.epochs}: {shown}"
