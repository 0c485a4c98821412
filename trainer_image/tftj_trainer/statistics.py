"""Normalization statistics: accumulated batch by batch in one pass, never from the whole array.

`Moments` merges per-batch count/mean/M2/min/max in float64 (Chan et al.'s parallel update), so
a dataset of any size costs one pass and O(features) memory. Every worker feeds it the same
batches in the same order, so every worker ends with bit-identical statistics. The result is
an (offset, scale) pair the model applies in its first layer: training and the exported model
both take raw features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Doubles = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Statistics:
    """Features are fed to the network as (x - offset) / scale; scale > 0 everywhere."""

    offset: Floats
    scale: Floats


@dataclass
class Moments:
    """Running column statistics of a stream of [n, d] feature batches."""

    count: int = 0
    mean: Doubles = field(default_factory=lambda: np.zeros(0))
    m2: Doubles = field(default_factory=lambda: np.zeros(0))
    minimum: Doubles = field(default_factory=lambda: np.zeros(0))
    maximum: Doubles = field(default_factory=lambda: np.zeros(0))

    def add(self, batch: npt.NDArray[np.floating]) -> None:
        n = int(batch.shape[0])
        if n == 0:
            return
        mean = batch.mean(axis=0, dtype=np.float64)
        m2 = np.square(batch - mean).sum(axis=0)
        low, high = batch.min(axis=0).astype(np.float64), batch.max(axis=0).astype(np.float64)
        if self.count == 0:
            self.count, self.mean, self.m2, self.minimum, self.maximum = n, mean, m2, low, high
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.minimum = np.minimum(self.minimum, low)
        self.maximum = np.maximum(self.maximum, high)
        self.count = total

    def statistics(self, kind: str) -> Statistics | None:
        """`z-score` (mean, population std) or `min-max` (min, range); None for `none`.

        Constant columns keep scale 1: dividing by 0 would turn them into NaNs.
        """
        if kind == "z-score":
            offset, scale = self.mean, np.sqrt(self.m2 / max(self.count, 1))
        elif kind == "min-max":
            offset, scale = self.minimum, self.maximum - self.minimum
        else:
            return None
        scale = np.where(scale > 0, scale, 1.0)
        return Statistics(offset.astype(np.float32), scale.astype(np.float32))


def statistics_of(features: npt.NDArray[np.floating], kind: str) -> Statistics | None:
    """The statistics of an in-memory array, by the same arithmetic as a streamed pass."""
    moments = Moments()
    moments.add(features)
    return moments.statistics(kind)
