"""The network: the built-in MLP or the user's `model.builder` hook, its loss and metrics, the
precision policy, and compilation. Must be called inside the strategy's scope.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tftj.api.models import ModelSpec, Training
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.exitcodes import ModelError
from tftj_trainer.statistics import Statistics

log = logging.getLogger("tftj_trainer")

ACTIVATIONS: dict[str, Any] = {
    "relu": "relu",
    "gelu": "gelu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "elu": "elu",
    "selu": "selu",
    "swish": "swish",
    "leaky-relu": keras.layers.LeakyReLU,
}
INITIALIZERS: dict[str, Any] = {
    "glorot-uniform": keras.initializers.GlorotUniform,
    "glorot-normal": keras.initializers.GlorotNormal,
    "he-uniform": keras.initializers.HeUniform,
    "he-normal": keras.initializers.HeNormal,
    "lecun-normal": keras.initializers.LecunNormal,
}
OUTPUT_ACTIVATION = {"classification": "softmax", "binary": "sigmoid", "regression": "linear"}
POLICIES = {
    "float32": "float32",
    "mixed-float16": "mixed_float16",
    "mixed-bfloat16": "mixed_bfloat16",
}


def metric_key(name: str) -> str:
    """Schema metric name -> the key tf_keras uses in logs (`top-5-accuracy` -> `top_5_accuracy`)."""
    return name.replace("-", "_")


def set_precision(precision: str) -> keras.mixed_precision.Policy:
    """Set the global policy before any layer is built. On CPU mixed precision is slow, not wrong:
    the policy is kept (so a run behaves the same wherever it lands) and a warning says so."""
    policy = keras.mixed_precision.Policy(POLICIES[precision])
    keras.mixed_precision.set_global_policy(policy)
    if precision != "float32" and not tf.config.list_physical_devices("GPU"):
        log.warning(
            "training.precision is %s but this worker has no GPU: computing in %s on CPU is "
            "slower than float32",
            precision,
            policy.compute_dtype,
        )
    return policy


def normalized_input(input_dim: int, statistics: Statistics | None) -> tuple[Any, Any]:
    """The model's input (raw features) and the tensor the network sees.

    Normalization is the model's first layer, not a step of the input pipeline, so the exported
    SavedModel takes raw features exactly like training does. It computes in float32 even under
    mixed precision: raw features may be large, and the next layer casts anyway.
    """
    inputs = keras.Input(shape=(input_dim,), name="features")
    if statistics is None:
        return inputs, inputs
    layer = keras.layers.Normalization(
        mean=statistics.offset,
        variance=np.square(statistics.scale),
        dtype="float32",
        name="normalization",
    )
    return inputs, layer(inputs)


def build_mlp(
    input_dim: int, spec: ModelSpec, training: Training, statistics: Statistics | None
) -> keras.Model:
    seed = training.seed
    reg = training.regularization
    regularizer = keras.regularizers.L1L2(l1=reg.l1, l2=reg.l2) if reg.l1 or reg.l2 else None
    inputs, x = normalized_input(input_dim, statistics)
    for i, units in enumerate(spec.hidden_units):
        # Distinct seeds per layer: one shared seed would give every layer the same init pattern.
        init = INITIALIZERS[spec.kernel_initializer](seed=seed + i)
        activation = ACTIVATIONS[spec.activation]
        # Without batch norm the activation is fused into Dense (one layer less per step);
        # with it, it must come after the normalization. leaky-relu only exists as a layer.
        fused = not spec.batch_normalization and not isinstance(activation, type)
        x = keras.layers.Dense(
            units,
            activation=activation if fused else None,
            kernel_initializer=init,
            kernel_regularizer=regularizer,
            use_bias=not spec.batch_normalization,  # batch norm's beta replaces the bias
            name=f"dense_{i}",
        )(x)
        if spec.batch_normalization:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        if not fused:
            layer = (
                activation(name=f"activation_{i}")
                if isinstance(activation, type)
                else keras.layers.Activation(activation, name=f"activation_{i}")
            )
            x = layer(x)
        if reg.dropout > 0:
            x = keras.layers.Dropout(reg.dropout, seed=seed + i, name=f"dropout_{i}")(x)
    outputs = output_layer(spec, seed + len(spec.hidden_units), regularizer)(x)
    return keras.Model(inputs, outputs, name="mlp")


def output_layer(spec: ModelSpec, seed: int, regularizer: Any) -> keras.layers.Layer:
    # float32 output even under mixed precision: softmax/sigmoid and the loss need the range.
    return keras.layers.Dense(
        spec.output_units,
        activation=OUTPUT_ACTIVATION[spec.task],
        kernel_initializer=INITIALIZERS[spec.kernel_initializer](seed=seed),
        kernel_regularizer=regularizer,
        dtype="float32",
        name="output",
    )


def build_custom(input_dim: int, params: ResolvedParameters) -> keras.Model:
    """`model.builder: package.module:function`, called with (input_dim, resolved parameters)."""
    target = params.spec.model.builder
    assert target is not None
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"model.builder {target}: cannot import: {error}") from None
    try:
        model = function(input_dim, params)
    except Exception as error:
        raise ModelError(
            f"model.builder {target} failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"model.builder {target} returned {type(model).__name__}, not a tf_keras Model"
        )
    return model


def build_model(
    input_dim: int, params: ResolvedParameters, statistics: Statistics | None
) -> keras.Model:
    """The network behind its normalization layer; a custom model is wrapped the same way."""
    spec = params.spec
    if not spec.model.builder:
        return build_mlp(input_dim, spec.model, spec.training, statistics)
    network = build_custom(input_dim, params)
    if statistics is None:
        return network
    inputs, x = normalized_input(input_dim, statistics)
    return keras.Model(inputs, network(x), name=network.name)


def sparse_crossentropy_with_smoothing(classes: int, smoothing: float) -> Any:
    """tf_keras' sparse crossentropy has no label smoothing: one-hot inside the loss instead."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        one_hot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=smoothing)

    loss.__name__ = "sparse_categorical_crossentropy_smoothed"
    return loss


def make_loss(training: Training, spec: ModelSpec) -> Any:
    smoothing = training.label_smoothing
    name = training.loss
    if name == "sparse-categorical-crossentropy":
        if smoothing > 0:
            return sparse_crossentropy_with_smoothing(spec.output_units or 2, smoothing)
        return keras.losses.SparseCategoricalCrossentropy()
    if name == "categorical-crossentropy":
        return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    if name == "binary-crossentropy":
        return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
    if name == "hinge":
        return keras.losses.Hinge()
    if name == "mse":
        return keras.losses.MeanSquaredError()
    if name == "mae":
        return keras.losses.MeanAbsoluteError()
    if name == "huber":
        return keras.losses.Huber()
    raise ValueError(f"unknown loss {name!r}")  # unreachable: the schema's Literal


def make_metrics(training: Training) -> list[keras.metrics.Metric]:
    """The metrics list minus `loss` (always reported), named as in the schema (- becomes _)."""
    one_hot = training.loss == "categorical-crossentropy"
    binary = training.loss in ("binary-crossentropy", "hinge")
    factories: dict[str, Any] = {
        "accuracy": (
            keras.metrics.BinaryAccuracy
            if binary
            else keras.metrics.CategoricalAccuracy
            if one_hot
            else keras.metrics.SparseCategoricalAccuracy
        ),
        "top-5-accuracy": (
            (lambda name: keras.metrics.TopKCategoricalAccuracy(k=5, name=name))
            if one_hot
            else (lambda name: keras.metrics.SparseTopKCategoricalAccuracy(k=5, name=name))
        ),
        "auc": keras.metrics.AUC,
        "precision": keras.metrics.Precision,
        "recall": keras.metrics.Recall,
        "mae": keras.metrics.MeanAbsoluteError,
        "mse": keras.metrics.MeanSquaredError,
        "rmse": keras.metrics.RootMeanSquaredError,
    }
    return [factories[m](name=metric_key(m)) for m in training.metrics or [] if m != "loss"]


def compile_model(model: keras.Model, params: ResolvedParameters, optimizer: Any) -> None:
    training = params.spec.training
    # Under mixed_float16 tf_keras' compile wraps the optimizer in a LossScaleOptimizer itself.
    model.compile(
        optimizer=optimizer,
        loss=make_loss(training, params.spec.model),
        metrics=make_metrics(training),
        steps_per_execution=training.steps_per_execution,
    )
