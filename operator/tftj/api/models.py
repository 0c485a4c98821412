"""The TFTrainingJob schema: every training parameter, typed and documented.

This module is the single source of truth. The CRD (crds/), docs/parameters.md, `tftj explain`,
the admission webhook, the operator and the trainer all derive from these models. A field's
`description` says what it does and its effect on training; its unit, valid range and default
are appended by the generators from the field's own metadata, so they can never disagree.

Conventions: camelCase on the wire (aliases), snake_case in Python; enums are lower-case
kebab words as users write them in YAML; unknown fields are errors (extra="forbid"); types
are strict (a string is never silently turned into a number, as the apiserver would not).
Fields whose default depends on another field are Optional here and filled by `resolve()`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tftj.api.formats import (
    AbsolutePath,
    DnsSubdomain,
    Image,
    LabelValue,
    PrintableText,
    QualifiedName,
    QueueName,
    RelativePath,
    ResourceName,
)

GROUP = "tftj.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TFTrainingJob"
PLURAL = "tftrainingjobs"
SINGULAR = "tftrainingjob"
SHORT_NAMES = ["tftj"]
CATEGORIES = ["all", "tftj", "training"]

DEFAULT_IMAGE = "tftj/trainer:0.1.0"

Optimizer = Literal["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "nadam"]
Task = Literal["classification", "binary", "regression"]
Loss = Literal[
    "sparse-categorical-crossentropy",
    "categorical-crossentropy",
    "binary-crossentropy",
    "hinge",
    "mse",
    "mae",
    "huber",
]
Metric = Literal[
    "loss", "accuracy", "top-5-accuracy", "auc", "precision", "recall", "mae", "mse", "rmse"
]
ScheduleType = Literal["constant", "cosine", "exponential", "step"]
ScalingRule = Literal["none", "linear", "sqrt"]
Activation = Literal["relu", "gelu", "tanh", "sigmoid", "elu", "selu", "swish", "leaky-relu"]
Initializer = Literal["glorot-uniform", "glorot-normal", "he-uniform", "he-normal", "lecun-normal"]
DataFormat = Literal["csv", "tfrecord", "npz", "synthetic"]
Normalization = Literal["z-score", "min-max", "none"]
ShardPolicy = Literal["auto", "data", "file", "off"]
Compression = Literal["auto", "none", "gzip", "zlib"]
Precision = Literal["float32", "mixed-float16", "mixed-bfloat16"]
LogLevel = Literal["debug", "info", "warning", "error"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
Phase = Literal["Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]


def doc(
    default: Any,
    description: str,
    *,
    unit: str | None = None,
    default_doc: str | None = None,
    distinct: bool = False,
    **constraints: Any,
) -> Any:
    """A documented field. `unit` and `default_doc` (for derived defaults) feed the generators;
    `distinct` marks a list whose items must differ (a `set` list in the CRD)."""
    extra: dict[str, Any] = {}
    if unit:
        extra["x-tftj-unit"] = unit
    if default_doc:
        extra["x-tftj-default"] = default_doc
    if distinct:
        extra["x-kubernetes-list-type"] = "set"
    if isinstance(default, BaseModel):
        # A section's default is a model holding lists: pydantic would deep-copy it for every
        # object it validates (a fifth of an admission review's time). The models are frozen
        # and never changed in place, so every object may share the one default.
        return Field(
            default_factory=lambda: default,
            description=description,
            json_schema_extra=extra or None,
            **constraints,
        )
    return Field(default, description=description, json_schema_extra=extra or None, **constraints)


class Model(BaseModel):
    """Base for every schema object: camelCase aliases, strict types, unknown fields forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        strict=True,
        frozen=True,
        # YAML's .nan/.inf are floats; no training parameter means anything with them.
        allow_inf_nan=False,
    )


def _distinct(items: list[Any]) -> list[Any]:
    seen = set()
    for item in items:
        if item in seen:
            raise PydanticCustomError(
                "distinct_items", "must list each item once, got {item} twice", {"item": item}
            )
        seen.add(item)
    return items


# A list whose items must differ (with doc(distinct=True) the CRD enforces it too). Two metrics
# of the same name abort the trainer's compile ("Found two metrics with the same name").
Distinct = AfterValidator(_distinct)

# Widest hidden layer: a layer of 0 units aborts TensorFlow (oneDNN) natively; wider than this
# is a memory mistake, not a model.
MAX_LAYER_WIDTH = 65_536
# Seconds fields that reach datetime arithmetic in the operator (and int64 in Kubernetes):
# bounded so neither overflows. 2^31-1 s is 68 years.
MAX_SECONDS = 2_147_483_647

# A Kubernetes resource quantity (the apiserver's own grammar): "500m", "2Gi", "1.5", "1e3".
QUANTITY_PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]


# --------------------------------------------------------------------------------------- training


class LearningRateScaling(Model):
    rule: ScalingRule = doc(
        "none",
        "How the learning rate is scaled with the global batch size: `linear` multiplies it by "
        "batchSize/referenceBatchSize (Goyal et al.), `sqrt` by the square root of that ratio, "
        "`none` uses learningRate as given. The result is status.resolvedParameters"
        ".derived.effectiveLearningRate, the rate the optimizer actually starts from.",
    )
    reference_batch_size: int = doc(
        256,
        "The global batch size at which learningRate was tuned; only used when rule is not `none`.",
        unit="examples",
        ge=1,
        le=1_048_576,
    )


class Schedule(Model):
    type: ScheduleType = doc(
        "constant",
        "Learning-rate schedule after warmup: `constant` keeps the rate; `cosine` decays it "
        "along a half cosine to minLearningRate at the last step; `exponential` multiplies it "
        "by decayRate every decayEpochs (smoothly); `step` multiplies it by decayRate at every "
        "multiple of decayEpochs (staircase).",
    )
    warmup_epochs: float = doc(
        0.0,
        "Length of a linear warmup from 0 to the effective learning rate. Converted to "
        "derived.warmupSteps when steps per epoch are known. Must be shorter than training.",
        unit="epochs",
        ge=0,
        le=1000,
    )
    decay_rate: float = doc(
        0.5,
        "Multiplier applied per decay period by `exponential` and `step` schedules; smaller "
        "decays faster. Only valid with those types.",
        gt=0,
        lt=1,
    )
    decay_epochs: float = doc(
        10.0,
        "Decay period of `exponential` and `step` schedules. Only valid with those types.",
        unit="epochs",
        # Shorter periods underflow in float32 and turn the learning rate into NaN.
        ge=0.001,
        le=100_000,
    )
    min_learning_rate: float = doc(
        0.0,
        "Floor of the `cosine` schedule: the rate reached at the last step. Must be below the "
        "effective learning rate. Only valid with `cosine`.",
        ge=0,
        le=10,
    )


class OptimizerParams(Model):
    """Optimizer-specific hyper-parameters; each is valid only with the optimizers listed."""

    momentum: float | None = doc(
        None,
        "Momentum factor (optimizers `momentum` and `rmsprop`). Higher values smooth updates "
        "over more past steps.",
        default_doc="0.9 for momentum, 0.0 for rmsprop",
        ge=0,
        lt=1,
    )
    nesterov: bool | None = doc(
        None,
        "Use Nesterov accelerated momentum (optimizer `momentum`).",
        default_doc="false for momentum",
    )
    beta1: float | None = doc(
        None,
        "Decay of the first-moment estimate (optimizers `adam`, `adamw`, `nadam`).",
        default_doc="0.9 for adam, adamw and nadam",
        ge=0,
        lt=1,
    )
    beta2: float | None = doc(
        None,
        "Decay of the second-moment estimate (optimizers `adam`, `adamw`, `nadam`).",
        default_doc="0.999 for adam, adamw and nadam",
        ge=0,
        lt=1,
    )
    epsilon: float | None = doc(
        None,
        "Numerical-stability constant added to the denominator (optimizers `adam`, `adamw`, "
        "`nadam`, `rmsprop`, `adagrad`). Larger values damp adaptive step sizes.",
        default_doc="1e-07 for adaptive optimizers",
        # Below float32's resolution it rounds to 0 and 0/0 makes the update NaN.
        ge=1e-10,
        le=1,
    )
    amsgrad: bool | None = doc(
        None,
        "Use the AMSGrad variant (optimizers `adam`, `adamw`).",
        default_doc="false for adam and adamw",
    )
    weight_decay: float | None = doc(
        None,
        "Decoupled weight decay applied by the optimizer each step (optimizer `adamw`). Unlike "
        "regularization.l2 it does not enter the loss.",
        default_doc="0.004 for adamw",
        ge=0,
        le=1,
    )
    rho: float | None = doc(
        None,
        "Discounting factor of the moving average of squared gradients (optimizer `rmsprop`).",
        default_doc="0.9 for rmsprop",
        gt=0,
        lt=1,
    )
    centered: bool | None = doc(
        None,
        "Normalize gradients by their estimated variance (optimizer `rmsprop`).",
        default_doc="false for rmsprop",
    )
    initial_accumulator_value: float | None = doc(
        None,
        "Starting value of the per-parameter accumulators (optimizer `adagrad`).",
        default_doc="0.1 for adagrad",
        ge=0,
        le=10,
    )


class Regularization(Model):
    l1: float = doc(
        0.0,
        "L1 penalty on every Dense kernel, added to the loss; drives weights to exactly zero.",
        ge=0,
        le=1,
    )
    l2: float = doc(
        0.0,
        "L2 penalty on every Dense kernel, added to the loss; shrinks weights.",
        ge=0,
        le=1,
    )
    dropout: float = doc(
        0.0,
        "Fraction of hidden activations dropped during training after each hidden layer; "
        "0 disables dropout.",
        ge=0,
        lt=1,
    )


class Training(Model):
    batch_size: int = doc(
        32,
        "GLOBAL batch size: examples per optimizer step summed over all replicas. Each replica "
        "processes batchSize/replicasInSync examples (derived.perReplicaBatchSize), so it must "
        "be divisible by replicasInSync.",
        unit="examples",
        ge=1,
        le=1_048_576,
    )
    epochs: int = doc(
        10,
        "Number of passes over the training data (or of stepsPerEpoch steps each).",
        unit="epochs",
        ge=1,
        le=100_000,
    )
    steps_per_epoch: int | None = doc(
        None,
        "Optimizer steps per epoch, the same on every worker. Unset: one full pass over the "
        "training split, counted by a pass over the files before training (csv/tfrecord); "
        "setting it with normalization `none` and no validationSplit skips that pass.",
        unit="steps",
        default_doc="one pass over the training split",
        ge=1,
        le=100_000_000,
    )
    learning_rate: float = doc(
        0.001,
        "Base learning rate of the optimizer, before batch-size scaling and schedule.",
        gt=0,
        le=10,
    )
    learning_rate_scaling: LearningRateScaling = doc(
        LearningRateScaling(), "Scaling of the learning rate with the global batch size."
    )
    optimizer: Optimizer = doc(
        "adam",
        "Optimization algorithm. `momentum` is SGD with momentum; `adamw` is Adam with decoupled "
        "weight decay.",
    )
    optimizer_params: OptimizerParams = doc(
        OptimizerParams(),
        "Optimizer-specific hyper-parameters; unset ones take the optimizer's defaults.",
    )
    schedule: Schedule = doc(Schedule(), "Learning-rate schedule, including warmup.")
    loss: Loss | None = doc(
        None,
        "Loss function. Must fit model.task: classification uses sparse- or categorical-"
        "crossentropy, binary uses binary-crossentropy or hinge, regression mse, mae or huber.",
        default_doc="sparse-categorical-crossentropy (classification), binary-crossentropy "
        "(binary), mse (regression)",
    )
    label_smoothing: float = doc(
        0.0,
        "Label smoothing for categorical- and binary-crossentropy; softens targets towards "
        "uniform, which regularizes over-confident classifiers.",
        ge=0,
        lt=1,
    )
    regularization: Regularization = doc(Regularization(), "Weight penalties and dropout.")
    metrics: Annotated[list[Metric], Distinct] | None = doc(
        None,
        "Metrics computed on train and validation data, logged to TensorBoard and Prometheus. "
        "accuracy needs a classification or binary task, top-5-accuracy classification, auc/"
        "precision/recall binary, mae/mse/rmse regression; loss fits any task.",
        default_doc="[loss, accuracy] (classification), [loss, accuracy, auc] (binary), "
        "[loss, mae] (regression)",
        min_length=1,
        max_length=9,
        distinct=True,
    )
    gradient_clip_norm: float | None = doc(
        None,
        "Clip each gradient to this global L2 norm before the update; unset disables clipping.",
        default_doc="no clipping",
        gt=0,
        le=1000,
    )
    precision: Precision = doc(
        "float32",
        "Numeric precision policy. `mixed-float16` computes in float16 on GPUs with a loss "
        "scaler (about 2x faster on tensor cores); `mixed-bfloat16` for hardware with bfloat16. "
        "Variables stay float32 either way.",
    )
    seed: int = doc(
        42,
        "Seed for weight initialization, dropout, shuffling and synthetic data; the same seed "
        "and parameters reproduce a run.",
        ge=0,
        le=2_147_483_647,
    )
    steps_per_execution: int = doc(
        1,
        "Training steps run inside one tf.function call; larger values cut per-step Python "
        "overhead for small models but coarsen progress reporting.",
        unit="steps",
        ge=1,
        le=1000,
    )


# ------------------------------------------------------------------------------------------ model


class ModelSpec(Model):
    task: Task = doc(
        "classification",
        "What the model predicts: `classification` (one of outputUnits classes, softmax), "
        "`binary` (one probability, sigmoid) or `regression` (outputUnits real values, linear). "
        "Chooses the output layer, the default loss and the default metrics.",
    )
    output_units: int | None = doc(
        None,
        "Size of the output layer: the number of classes for classification (>= 2), 1 for "
        "binary, the number of targets for regression.",
        default_doc="10 (classification), 1 (binary, regression)",
        ge=1,
        le=1_000_000,
    )
    hidden_units: list[Annotated[int, Field(ge=1, le=MAX_LAYER_WIDTH)]] = doc(
        [128, 64],
        "Widths of the hidden Dense layers, input side first; [] builds a linear model. Each "
        f"width is 1 to {MAX_LAYER_WIDTH} units.",
        max_length=64,
    )
    activation: Activation = doc("relu", "Activation of every hidden layer.")
    batch_normalization: bool = doc(
        False, "Insert batch normalization after each hidden Dense layer (before activation)."
    )
    kernel_initializer: Initializer = doc(
        "glorot-uniform", "Initializer of every Dense kernel; he-* suit relu-like activations."
    )
    builder: str | None = doc(
        None,
        "Custom model hook `package.module:function` importable in the worker image. It is "
        "called with (input_dim, resolved_parameters) and returns an uncompiled tf_keras model; "
        "hiddenUnits, activation, batchNormalization and kernelInitializer are then ignored.",
        default_doc="the built-in MLP",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=253,
    )


# ------------------------------------------------------------------------------------------- data


class Preprocess(Model):
    normalization: Normalization = doc(
        "z-score",
        "Feature scaling with statistics computed on the training split only: `z-score` "
        "(zero mean, unit variance), `min-max` (to [0, 1]) or `none`.",
    )


class Synthetic(Model):
    examples: int = doc(
        4096,
        "Number of generated examples (training + validation) for format `synthetic`.",
        unit="examples",
        ge=16,
        le=10_000_000,
    )
    features: int = doc(
        32, "Number of input features of the generated data.", unit="features", ge=1, le=100_000
    )
    noise: float = doc(
        0.1,
        "Standard deviation of Gaussian noise added to the generated inputs; higher is harder.",
        ge=0,
        le=10,
    )


class Data(Model):
    format: DataFormat = Field(
        description="Input format: `csv` (header row, one example per row), `tfrecord` "
        "(tf.train.Example records), `npz` (NumPy archive of arrays) or `synthetic` (a "
        "generated, learnable dataset for smoke tests and benchmarks; needs no other field). "
        "Required: the only field without a default.",
    )
    path: PrintableText | None = doc(
        None,
        "Training data: a file, a directory (every file in it), a glob, or a comma-separated "
        "list of these, read through "
        "tf.io.gfile (local paths, or gs:// and s3:// where the image has the filesystem "
        "plugins). Required for csv, tfrecord and npz. A relative path is relative to the "
        "manifest file's directory in `tftj run` (and `tftj resolve --local`), and to the "
        "trainer container's working directory in a cluster (the trainer image ships the "
        "examples' data/ there).",
        default_doc="none (required unless format is synthetic)",
        min_length=1,
        max_length=4096,
    )
    validation_path: PrintableText | None = doc(
        None,
        "Separate validation data in the same format (relative paths as for path). When set, "
        "validationSplit must be 0.",
        default_doc="split off the training data",
        min_length=1,
        max_length=4096,
    )
    validation_split: float = doc(
        0.1,
        "Fraction of the training data held out for validation; 0 disables validation unless "
        "validationPath is set. npz and synthetic: exactly int(examples x fraction), taken "
        "after a seeded shuffle. csv and tfrecord: each record with this probability, decided by "
        "a hash of its bytes keyed with training.seed (the same records every epoch, on every "
        "worker, without reading the data into memory).",
        ge=0,
        lt=1,
    )
    label_key: PrintableText = doc(
        "label",
        "Where the label is: the CSV column name, the tf.train.Example feature name, or the npz "
        "array name. Every other CSV column is a feature.",
        min_length=1,
        max_length=253,
    )
    features_key: PrintableText = doc(
        "features",
        "The tf.train.Example float-list feature or npz array holding the inputs (csv: unused).",
        min_length=1,
        max_length=253,
    )
    num_features: int | None = doc(
        None,
        "Length of the feature vector. Required for tfrecord (fixed-length parsing); checked "
        "against the data for csv and npz when set.",
        default_doc="inferred from the data (csv, npz); synthetic.features (synthetic)",
        ge=1,
        le=100_000,
    )
    synthetic: Synthetic = doc(Synthetic(), "Shape of the generated data (format synthetic).")
    preprocess: Preprocess = doc(Preprocess(), "Preprocessing applied to features.")
    shuffle: bool = doc(True, "Shuffle training examples every epoch (seeded).")
    shuffle_buffer: int = doc(
        10_000,
        "Examples each worker holds in its shuffle buffer (raw records for csv/tfrecord): with "
        "the read buffers, what bounds a worker's input memory whatever the dataset's size.",
        unit="examples",
        ge=1,
        le=10_000_000,
    )
    cache: bool = doc(
        False,
        "Keep each worker's shard in memory after the first epoch (csv/tfrecord: the raw "
        "records, still parsed every epoch), saving the file reads of later epochs. Only when "
        "the shard fits in the worker's memory: the default streams every epoch from storage.",
    )
    compression: Compression = doc(
        "auto",
        "Compression of csv and tfrecord files: `gzip`, `zlib`, `none`, or `auto` (by file "
        "name: .gz/.gzip are gzip, .zz/.zlib are zlib, anything else uncompressed). npz: unused.",
    )
    shard_policy: ShardPolicy = doc(
        "auto",
        "How workers split the input: `file` gives each worker whole files (needs at least as "
        "many files as workers), `data` has every worker read all data and keep its share, "
        "`auto` picks file when there are enough files and data otherwise, `off` disables "
        "sharding (every worker sees every example).",
    )


# ---------------------------------------------------------------------------------------- logging


class Logging(Model):
    frequency: int = doc(
        100,
        "Steps between TensorBoard scalar summaries and progress reports (per-epoch summaries "
        "are always written).",
        unit="steps",
        ge=1,
        le=1_000_000,
    )
    directory: RelativePath = doc(
        "logs",
        "TensorBoard log directory, relative to the job's storage root.",
    )
    level: LogLevel = doc("info", "Verbosity of the trainer's own log lines.")


# ---------------------------------------------------------------------------------------- workers


class EnvVar(Model):
    name: str = Field(
        description="Environment variable name.",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
    )
    value: str | None = doc(None, "Literal value (set value or valueFrom, not both).")
    value_from: dict[str, Any] | None = doc(
        None, "A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...)."
    )


class Toleration(Model):
    key: QualifiedName | None = doc(
        None, "Taint key the toleration applies to; unset matches all keys (with Exists)."
    )
    operator: Literal["Exists", "Equal"] | None = doc(
        None, "`Exists` or `Equal`.", default_doc="Equal"
    )
    value: LabelValue | None = doc(None, "Taint value to match with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = doc(
        None, "Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = doc(
        None, "How long a NoExecute taint is tolerated.", unit="seconds", ge=0, le=MAX_SECONDS
    )


class PodTemplate(Model):
    """Overrides applied to every worker pod; what is not listed here the operator owns."""

    labels: dict[QualifiedName, LabelValue] = doc({}, "Extra labels on worker pods.", max_length=64)
    annotations: dict[QualifiedName, str] = doc(
        {}, "Extra annotations on worker pods.", max_length=64
    )
    node_selector: dict[QualifiedName, LabelValue] = doc(
        {}, "Node labels a worker's node must have.", max_length=64
    )
    tolerations: list[Toleration] = doc(
        [], "Taints worker pods tolerate (e.g. GPU node taints).", max_length=64
    )
    affinity: dict[str, Any] | None = doc(None, "A core/v1 Affinity for worker pods.")
    # maxItems bound the cost of the CEL rules the apiserver runs on every item.
    env: list[EnvVar] = doc(
        [], "Extra environment variables of the trainer container.", max_length=128
    )
    volumes: list[dict[str, Any]] = doc([], "Extra core/v1 Volumes of worker pods.", max_length=64)
    volume_mounts: list[dict[str, Any]] = doc(
        [], "Extra core/v1 VolumeMounts of the trainer container.", max_length=64
    )
    service_account_name: DnsSubdomain | None = doc(
        None,
        "ServiceAccount the workers run as.",
        default_doc="the namespace's default",
    )
    priority_class_name: DnsSubdomain | None = doc(
        None,
        "PriorityClass of worker pods (same as scheduling.priorityClassName; set one).",
    )


class Resources(Model):
    # Sized to schedule the shipped examples on a small node (2 workers on 2 cores beside the
    # operator); no CPU limit by default: TensorFlow uses idle cores, a CPU limit throttles
    # its collectives. Real jobs set their own.
    requests: dict[ResourceName, Quantity] = doc(
        {"cpu": "500m", "memory": "1Gi"},
        "Resources each worker requests for scheduling (Kubernetes quantities, e.g. cpu: '4', "
        "memory: 16Gi). The default fits two workers on a 2-core node; size it for real jobs. "
        "GPUs come from gpusPerWorker, not from here.",
        max_length=16,
    )
    limits: dict[ResourceName, Quantity] = doc(
        {"memory": "8Gi"},
        "Hard limits per worker (Kubernetes quantities). A worker above its memory limit is "
        "OOM-killed, which tftj retries as a failed attempt.",
        max_length=16,
    )


class Workers(Model):
    replicas: int = doc(
        1,
        "Number of worker pods (processes) training synchronously; worker 0 is the chief.",
        unit="workers",
        ge=1,
        le=1024,
    )
    # A job that names no GPUs asks for none, as any pod that requests none (and so it runs on
    # any cluster); GPU jobs say how many.
    gpus_per_worker: int = doc(
        0,
        "`nvidia.com/gpu` each worker requests; each GPU is one replica in sync. 0 trains on "
        "CPU (one replica per worker).",
        unit="GPUs",
        ge=0,
        le=16,
    )
    image: Image = doc(
        DEFAULT_IMAGE,
        "Container image with the tftj trainer (or your own image with it installed).",
    )
    image_pull_policy: PullPolicy = doc("IfNotPresent", "When the kubelet pulls the image.")
    port: int = doc(
        2222,
        "TCP port of the TensorFlow collective (gRPC) server on every worker.",
        ge=1024,
        le=65535,
    )
    resources: Resources = doc(Resources(), "CPU/memory requests and limits per worker.")
    pod_template: PodTemplate = doc(PodTemplate(), "Overrides applied to every worker pod.")


# -------------------------------------------------------------------------------- storage & saving


class Storage(Model):
    claim_name: DnsSubdomain | None = doc(
        None,
        "An existing PersistentVolumeClaim (ReadWriteMany for more than one node) holding the "
        "job's logs, checkpoints and exported model under a sub-directory named after the job.",
        default_doc="none",
    )
    size: str | None = doc(
        None,
        "Size of a PersistentVolumeClaim the operator creates for the job (owned by it, deleted "
        "with it). Mutually exclusive with claimName.",
        default_doc="none",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$",
        max_length=64,
    )
    storage_class_name: DnsSubdomain | None = doc(
        None,
        "StorageClass of the claim the operator creates (with size).",
        default_doc="the cluster default",
    )
    mount_path: AbsolutePath = doc(
        "/storage",
        "Where the job's storage root is mounted in worker pods; not /etc/tftj (the "
        "parameters) nor a path above or below it.",
    )


class Checkpoint(Model):
    frequency: int = doc(
        1,
        "Epochs between checkpoints; a restarted attempt resumes from the latest one, so at "
        "most this many epochs are repeated after a failure.",
        unit="epochs",
        ge=1,
        le=100_000,
    )
    max_to_keep: int = doc(
        3, "How many recent checkpoints are kept; older ones are deleted.", ge=1, le=1000
    )
    directory: RelativePath = doc(
        "checkpoints",
        "Checkpoint directory, relative to the job's storage root.",
    )


class Export(Model):
    enabled: bool = doc(True, "Export a SavedModel when training succeeds.")
    directory: RelativePath = doc(
        "export",
        "Export directory, relative to the job's storage root.",
    )


# ------------------------------------------------------------------------------ run & scheduling


class RunPolicy(Model):
    backoff_limit: int = doc(
        3,
        "Whole-group restarts allowed after retryable failures (a lost peer, an evicted or "
        "OOM-killed worker). Each restart starts all workers anew from the latest checkpoint; "
        "permanent failures (bad data, bad parameters) are never retried.",
        unit="restarts",
        ge=0,
        le=100,
    )
    active_deadline_seconds: int | None = doc(
        None,
        "Limit on the time the job runs, counted from status.activeStartTime: its start, and "
        "again from each resume, so time suspended (runPolicy.suspend) or waiting in a Kueue "
        "queue does not count, as for a Kubernetes Job. Restarts after failures do not reset "
        "it. Past it all workers are stopped and the job fails with reason DeadlineExceeded.",
        unit="seconds",
        default_doc="no deadline",
        ge=1,
        le=MAX_SECONDS,
    )
    ttl_seconds_after_finished: int | None = doc(
        None,
        "Delete the job (and all it owns) this long after it succeeded or failed.",
        unit="seconds",
        default_doc="kept forever",
        ge=0,
        le=MAX_SECONDS,
    )
    suspend: bool = doc(
        False,
        "Stop all workers (the attempt ends; progress is kept in checkpoints) and resume from "
        "the latest checkpoint when set back to false.",
    )


class Scheduling(Model):
    queue_name: QueueName | None = doc(
        None,
        "Kueue LocalQueue: the worker Job gets `kueue.x-k8s.io/queue-name` and starts only "
        "when Kueue admits all its workers at once. A LocalQueue name that fits a label value.",
        default_doc="no queue",
    )
    priority_class_name: DnsSubdomain | None = doc(
        None, "PriorityClass of worker pods.", default_doc="none"
    )
    scheduler_name: DnsSubdomain | None = doc(
        None,
        "Scheduler for worker pods (e.g. a gang scheduler).",
        default_doc="default-scheduler",
    )


class TensorBoardSpec(Model):
    enabled: bool = doc(
        False,
        "Run a TensorBoard Deployment and Service on the job's log directory (needs storage).",
    )
    image: Image | None = doc(
        None,
        "Image with the tensorboard command.",
        default_doc="workers.image",
    )


class MetricsSpec(Model):
    port: int = doc(
        9400,
        "Port of every worker's Prometheus /metrics endpoint; the operator reads training "
        "progress from the chief's.",
        ge=1024,
        le=65535,
    )


# ------------------------------------------------------------------------------------------- spec


class TFTrainingJobSpec(Model):
    training: Training = doc(Training(), "Optimization: batch, epochs, optimizer, schedule, loss.")
    model: ModelSpec = doc(ModelSpec(), "The network: task, layers, activation, custom builder.")
    data: Data = Field(description="Where the examples come from and how they are prepared.")
    logging: Logging = doc(Logging(), "TensorBoard summaries and log verbosity.")
    workers: Workers = doc(Workers(), "How many workers, their GPUs, image, resources, pods.")
    storage: Storage = doc(Storage(), "Persistent storage for logs, checkpoints and exports.")
    checkpoint: Checkpoint = doc(Checkpoint(), "Checkpointing and resume.")
    export: Export = doc(Export(), "SavedModel export at the end of training.")
    run_policy: RunPolicy = doc(RunPolicy(), "Restarts, deadline, clean-up and suspension.")
    scheduling: Scheduling = doc(Scheduling(), "Queueing, priority and scheduler.")
    tensorboard: TensorBoardSpec = doc(TensorBoardSpec(), "Optional TensorBoard server.")
    metrics: MetricsSpec = doc(MetricsSpec(), "Prometheus metrics of the workers.")


class ObjectMeta(Model):
    """The parts of metadata tftj reads; everything else passes through untouched."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    name: str | None = None
    namespace: str | None = None
    generate_name: str | None = Field(None, alias="generateName")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


# ----------------------------------------------------------------------------------------- status


class Condition(Model):
    type: str = Field(description="Condition type, e.g. Running, Succeeded, Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One-word CamelCase reason.")
    message: str = Field(description="Human-readable explanation.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = doc(None, "The spec generation this was computed from.")


class ReplicaStatus(Model):
    desired: int = doc(0, "Workers the current attempt needs.")
    ready: int = doc(0, "Workers running and ready.")
    succeeded: int = doc(0, "Workers that exited successfully.")
    failed: int = doc(0, "Workers that failed in the current attempt.")


class FailureRecord(Model):
    attempt: int = Field(description="Attempt (0-based) that failed.")
    worker_index: int | None = doc(None, "Index of the worker that failed first.")
    exit_code: int | None = doc(None, "Its container exit code (see the trainer's table).")
    reason: str = Field(
        description="Why: Retryable, Permanent, Crashed (a native crash of the trainer, e.g. "
        "SIGABRT or SIGSEGV; not retried), Disrupted (evicted, preempted or node lost; retried "
        "without charge to backoffLimit), Evicted, DeadlineExceeded, ..."
    )
    message: str = doc("", "Details: the container's termination message or the event.")
    time: str = Field(description="When the failure was observed (RFC 3339).")


class Progress(Model):
    epoch: int = doc(0, "Epochs completed.")
    total_epochs: int = doc(0, "Epochs to train.")
    step: int = doc(0, "Global optimizer steps completed.")
    loss: float | None = doc(None, "Latest training loss.")
    metrics: dict[str, float] = doc({}, "Latest metric values, train and validation.")
    examples_per_second: float | None = doc(None, "Recent global throughput.")
    eta_seconds: int | None = doc(None, "Estimated time to completion.")
    update_time: str | None = doc(None, "When progress was last read (RFC 3339).")


class TFTrainingJobStatus(Model):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        strict=False,
        frozen=True,
    )

    observed_generation: int | None = doc(None, "Generation of spec last acted on.")
    phase: Phase | None = doc(None, "Pending, Running, Restarting, Suspended, Succeeded, Failed.")
    conditions: list[Condition] = doc([], "Latest observations of the job's state.")
    resolved_parameters: dict[str, Any] | None = doc(
        None,
        "For people (kubectl describe): the values the trainer uses that the spec does not "
        "show, one line per group. `derived`: values computed from several fields; `defaults`: "
        "a spec path (spec.training.schedule) -> the defaults the operator resolved there. The "
        "spec is stored as written, so spec plus defaults is the whole resolved spec; programs "
        "read it typed from ConfigMap <name>-params (params.yaml).",
    )
    parameters_hash: str | None = doc(None, "Stable hash of the resolved training parameters.")
    workers: str | None = doc(None, "Ready/desired workers, e.g. 3/4 (printer column).")
    gpus: int | None = doc(None, "GPUs requested by all workers.")
    replicas: ReplicaStatus = doc(ReplicaStatus(), "Worker counts of the current attempt.")
    attempt: int = doc(0, "Current attempt number (0-based); each restart adds one.")
    restarts: int = doc(
        0, "Whole-group restarts after worker failures, charged to runPolicy.backoffLimit."
    )
    disruptions: int = doc(
        0,
        "Whole-group restarts after Kubernetes ended a worker (evicted, preempted, its node "
        "lost: the pod's DisruptionTarget condition); not charged to runPolicy.backoffLimit.",
    )
    last_failure: FailureRecord | None = doc(None, "The most recent failure.")
    progress: Progress | None = doc(None, "Training progress read from the chief's metrics.")
    start_time: str | None = doc(None, "When the first attempt started (RFC 3339).")
    active_start_time: str | None = doc(
        None,
        "When the job last started running: its start, or its latest resume after being "
        "suspended or queued (RFC 3339); unset while suspended or queued. "
        "runPolicy.activeDeadlineSeconds counts from here.",
    )
    completion_time: str | None = doc(None, "When the job succeeded or failed (RFC 3339).")


class TFTrainingJob(Model):
    api_version: Literal["tftj.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TFTrainingJob"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TFTrainingJobSpec
    status: dict[str, Any] | None = None
