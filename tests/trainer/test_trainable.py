"""Accepted means trainable: a spec validate() accepts trains without raising or crashing.

Specs are drawn from the schema's own choices: every task, loss, metric set, optimizer (with
the parameters it accepts, anywhere in their schema range, bounds included), schedule, warmup,
scaling rule, precision, activation, initializer, normalization, batch normalization, dropout,
regularization, clipping, label smoothing, seed and steps per execution. What is kept small is
only what costs time: the synthetic data, the layer widths, one epoch of a few steps. Each
accepted spec is trained by the real trainer (`train()`, with checkpoints and TensorBoard
summaries) in this process, one worker. A defect shows up as an exception (hypothesis shrinks
it to the smallest spec) or as a native crash of the test process (the spec being trained is
printed first, and pytest's faulthandler prints the stack).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import OPTIMIZER_DEFAULTS, resolve
from tftj.api.rules import LOSS_TASKS, METRIC_TASKS, SCHEDULE_FIELD_TYPES
from tftj.api.schema import Schema, schema_at
from tftj.api.validate import validate

from tests.trainer.conftest import manifest, train_alone

EXAMPLES = 40  # ~1-2 s each on a loaded 2-core machine
SPEC = ("spec",)


def field(*path: str) -> Schema:
    node = schema_at((*SPEC, *path))
    assert node is not None, path
    return node


def choices(*path: str) -> st.SearchStrategy[Any]:
    values = field(*path).get("enum")
    assert values, path
    return st.sampled_from(values)


def in_range(*path: str) -> st.SearchStrategy[Any]:
    """Any value of the field's schema range, its bounds (when inclusive) drawn often."""
    node = field(*path)
    if node.get("type") == "integer":
        lo, hi = int(node["minimum"]), int(node["maximum"])
        return st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi))
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    low_open, high_open = "exclusiveMinimum" in node, "exclusiveMaximum" in node
    edges = [v for v, open_ in ((lo, low_open), (hi, high_open)) if not open_]
    numbers = st.floats(lo, hi, exclude_min=low_open, exclude_max=high_open, allow_nan=False)
    return st.one_of(st.sampled_from(edges), numbers) if edges else numbers


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


@st.composite
def trainable_specs(draw: st.DrawFn) -> dict[str, Any]:
    task = draw(choices("model", "task"))
    losses = [loss for loss, tasks in LOSS_TASKS.items() if task in tasks]
    metrics = [metric for metric, tasks in METRIC_TASKS.items() if task in tasks]
    optimizer = draw(choices("training", "optimizer"))
    accepted = sorted(OPTIMIZER_DEFAULTS[optimizer])
    schedule_type = draw(choices("training", "schedule", "type"))
    schedule_fields = [
        a for a, (_, types) in SCHEDULE_FIELD_TYPES.items() if schedule_type in types
    ]
    output_units = {
        "classification": st.integers(2, 12),
        "binary": st.just(1),
        "regression": st.integers(1, 3),
    }[task]
    widths = st.one_of(
        st.integers(1, 16),
        st.sampled_from([1, int(field("model", "hiddenUnits")["items"]["maximum"])]),
    )
    training = _compact(
        {
            "epochs": 1,
            "stepsPerEpoch": draw(st.integers(1, 3)),
            "batchSize": draw(st.one_of(st.integers(1, 64), st.just(1))),
            "learningRate": draw(in_range("training", "learningRate")),
            "learningRateScaling": {
                "rule": draw(choices("training", "learningRateScaling", "rule")),
                "referenceBatchSize": draw(
                    in_range("training", "learningRateScaling", "referenceBatchSize")
                ),
            },
            "optimizer": optimizer,
            "optimizerParams": {
                name: draw(
                    st.booleans()
                    if field("training", "optimizerParams", name).get("type") == "boolean"
                    else in_range("training", "optimizerParams", name)
                )
                for name in draw(st.lists(st.sampled_from(accepted), unique=True))
            }
            if accepted
            else None,
            "schedule": {
                "type": schedule_type,
                "warmupEpochs": draw(st.one_of(st.just(0.0), st.floats(0, 1, exclude_max=True))),
                **{name: draw(in_range("training", "schedule", name)) for name in schedule_fields},
            },
            "loss": draw(maybe(st.sampled_from(losses))),
            "labelSmoothing": draw(st.one_of(st.just(0.0), in_range("training", "labelSmoothing"))),
            "regularization": {
                name: draw(st.one_of(st.just(0.0), in_range("training", "regularization", name)))
                for name in ("l1", "l2", "dropout")
            },
            "metrics": draw(maybe(st.lists(st.sampled_from(metrics), min_size=1, max_size=4))),
            "gradientClipNorm": draw(maybe(in_range("training", "gradientClipNorm"))),
            "precision": draw(choices("training", "precision")),
            "seed": draw(in_range("training", "seed")),
            "stepsPerExecution": draw(in_range("training", "stepsPerExecution")),
        }
    )
    model = {
        "task": task,
        "outputUnits": draw(maybe(output_units)),
        "hiddenUnits": draw(st.lists(widths, max_size=3)),
        "activation": draw(choices("model", "activation")),
        "batchNormalization": draw(st.booleans()),
        "kernelInitializer": draw(choices("model", "kernelInitializer")),
    }
    data = {
        "format": "synthetic",
        "synthetic": {
            "examples": draw(
                st.integers(int(field("data", "synthetic", "examples")["minimum"]), 96)
            ),
            "features": draw(st.integers(1, 8)),
            "noise": draw(in_range("data", "synthetic", "noise")),
        },
        "validationSplit": draw(st.one_of(st.just(0.0), in_range("data", "validationSplit"))),
        "preprocess": {"normalization": draw(choices("data", "preprocess", "normalization"))},
        "shuffle": draw(st.booleans()),
        "shuffleBuffer": draw(in_range("data", "shuffleBuffer")),
        "cache": draw(st.booleans()),
        "shardPolicy": draw(choices("data", "shardPolicy")),
    }
    return {
        "training": training,
        "model": _compact(model),
        "data": data,
        "logging": {
            "frequency": draw(in_range("logging", "frequency")),
            "level": draw(choices("logging", "level")),
        },
        "checkpoint": {
            "frequency": draw(st.integers(1, 2)),
            "maxToKeep": draw(st.integers(1, 3)),
        },
        "export": {"enabled": False},  # exporting is tests/trainer's export tests' business
        "workers": {"replicas": 1, "gpusPerWorker": 0},
    }


def train_one(spec: dict[str, Any], storage: Path) -> None:
    import tf_keras as keras

    params = resolve(TFTrainingJobSpec.model_validate(spec), name="trainable")
    keras.backend.clear_session()
    try:
        train_alone(params, storage)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_every_accepted_spec_trains(tmp_path: Path) -> None:
    trained: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(trainable_specs())
    def accepted_trains(spec: dict[str, Any]) -> None:
        report = validate(manifest("trainable", spec))
        assume(report.ok)
        # Printed before training: a native crash kills the process before hypothesis reports.
        print(f"training {spec}", file=sys.stderr, flush=True)
        train_one(spec, tmp_path / f"run-{len(trained)}")
        trained.append(spec)

    accepted_trains()
    print(f"{len(trained)} random accepted specs trained", file=sys.stderr)
    assert len(trained) >= EXAMPLES // 2, "too few generated specs were valid: generator drifted"
