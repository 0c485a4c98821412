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
