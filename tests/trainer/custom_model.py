"""A `model.builder` hook as a user's own image would ship it."""

from __future__ import annotations

from typing import Any

import tf_keras as keras


def build(input_dim: int, params: Any) -> keras.Model:
    inputs = keras.Input(shape=(input_dim,))
    outputs = keras.layers.Dense(
        params.spec.model.output_units, activation="softmax", name="custom_output"
    )(inputs)
    return keras.Model(inputs, outputs, name="custom")


def not_a_model(input_dim: int, params: Any) -> str:
    return "nope"


def spy(input_dim: int, params: Any) -> keras.Model:
    """A small MLP whose first layer appends the ids (feature 0) of every example it trains on
    to $SPY_DIR/worker-<index>.ids: which records each worker really saw."""
    import os
    from pathlib import Path

    import tensorflow as tf

    index = os.environ.get("JOB_COMPLETION_INDEX", "0")
    out = Path(os.environ["SPY_DIR"]) / f"worker-{index}.ids"

    def record(ids: Any) -> Any:
        with out.open("a") as handle:
            handle.write("".join(f"{int(i)}\n" for i in ids.numpy()))
        return 0

    class Spy(keras.layers.Layer):  # type: ignore[misc]
        def call(self, inputs: Any, training: Any = None) -> Any:
            if not training:
                return inputs
            done = tf.py_function(record, [inputs[:, 0]], Tout=tf.int32)
            with tf.control_dependencies([done]):
                return tf.identity(inputs)

    inputs = keras.Input(shape=(input_dim,))
    hidden = keras.layers.Dense(16, activation="relu")(Spy(name="spy")(inputs))
    outputs = keras.layers.Dense(params.spec.model.output_units, activation="softmax")(hidden)
    return keras.Model(inputs, outputs, name="spied")
