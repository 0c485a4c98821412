"""Which worker this process is, in which group, and the distribution strategy that follows.

TF_CONFIG from the environment wins; otherwise it is built from what the operator sets on an
Indexed Job's pods (TFTJ_WORKER_HOSTS and JOB_COMPLETION_INDEX). A group of one worker trains
with TensorFlow's default strategy: no collectives, no gRPC server, no distribution overhead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tftj.api.contract import ENV_WORKER_HOSTS, ENV_WORKER_INDEX, ExitCode
from tftj.api.resolve import ResolvedParameters

from tftj_trainer.exitcodes import TrainerError


@dataclass(frozen=True)
class Cluster:
    workers: tuple[str, ...]  # host:port of every worker, index order; () for a lone worker
    index: int

    @property
    def size(self) -> int:
        return max(1, len(self.workers))

    @property
    def is_chief(self) -> bool:
        """Worker 0 is the chief: it alone writes checkpoints, TensorBoard logs and the export."""
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def group_problems(
    params: ResolvedParameters, cluster: Cluster, visible_gpus: int
) -> tuple[list[str], list[str]]:
    """(errors, warnings) of running `params` in this group on this machine.

    The per-replica batch and the learning-rate scaling were resolved for workers.replicas
    workers; a group of another size would silently train something else.
    """
    errors: list[str] = []
    warnings: list[str] = []
    expected = params.spec.workers.replicas
    if cluster.size != expected:
        errors.append(
            f"workers.replicas is {expected} but this worker's group has {cluster.size} "
            "worker(s) (TF_CONFIG / TFTJ_WORKER_HOSTS)"
        )
    wanted = params.spec.workers.gpus_per_worker
    if wanted > visible_gpus:
        warnings.append(
            f"workers.gpusPerWorker is {wanted} but {visible_gpus} GPU(s) are visible: training "
            "on what is there"
        )
    return errors, warnings


def tf_config(cluster: Cluster) -> dict[str, Any]:
    return {
        "cluster": {"worker": list(cluster.workers)},
        "task": {"type": "worker", "index": cluster.index},
    }


def cluster_from_env(env: Mapping[str, str]) -> Cluster:
    """The group as the environment describes it; a usage error when it is inconsistent."""
    if env.get("TF_CONFIG"):
        try:
            config = json.loads(env["TF_CONFIG"])
            workers = tuple(config["cluster"]["worker"])
            index = int(config["task"]["index"])
        except (ValueError, KeyError, TypeError) as error:
            raise TrainerError(f"TF_CONFIG is not valid: {error}", ExitCode.USAGE) from None
    elif env.get(ENV_WORKER_HOSTS):
        workers = tuple(h.strip() for h in env[ENV_WORKER_HOSTS].split(",") if h.strip())
        try:
            index = int(env.get(ENV_WORKER_INDEX, "0"))
        except ValueError:
            raise TrainerError(
                f"{ENV_WORKER_INDEX} must be an integer, got {env[ENV_WORKER_INDEX]!r}",
                ExitCode.USAGE,
            ) from None
    else:
        return Cluster(workers=(), index=0)
    if not 0 <= index < max(1, len(workers)):
        raise TrainerError(
            f"worker index {index} is outside the {len(workers)} workers", ExitCode.USAGE
        )
    return Cluster(workers=workers, index=index)


def install_tf_config(cluster: Cluster) -> None:
    """Export TF_CONFIG for MultiWorkerMirroredStrategy; a lone worker must not have one."""
    if cluster.distributed:
        os.environ["TF_CONFIG"] = json.dumps(tf_config(cluster))
    else:
        os.environ.pop("TF_CONFIG", None)


def strategy_plan(distributed: bool, local_gpus: int) -> tuple[str, str | None]:
    """(strategy, collective implementation) for this worker; pure, so CPU tests can check it.

    A group uses MultiWorkerMirroredStrategy with NCCL all-reduce when the worker has GPUs
    (NCCL is the fast path between GPUs) and gRPC RING otherwise (NCCL needs GPUs). A lone
    worker with several GPUs mirrors over them (MirroredStrategy; one replica per GPU, as
    resolve() counts replicasInSync); with one GPU or none, the default strategy has no
    distribution overhead at all.
    """
    if distributed:
        return "multi-worker", "NCCL" if local_gpus > 0 else "RING"
    if local_gpus > 1:
        return "mirrored", None
    return "default", None


def make_strategy(cluster: Cluster) -> Any:
    """The tf.distribute strategy of strategy_plan() for this worker.

    Must run before any other TensorFlow op: MWMS starts the collective gRPC server at creation.
    """
    import tensorflow as tf

    install_tf_config(cluster)
    kind, collective = strategy_plan(
        cluster.distributed, len(tf.config.list_physical_devices("GPU"))
    )
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    assert collective is not None  # strategy_plan names one for every multi-worker plan
    implementation = getattr(tf.distribute.experimental.CommunicationImplementation, collective)
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
