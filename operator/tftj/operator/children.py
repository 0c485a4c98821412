"""Builders of everything a TFTrainingJob owns: pure functions from the resolved parameters to
Kubernetes manifests (plain dicts), plus the labels that tie children to their job.

Names come from tftj.api.naming, the trainer's environment from tftj.api.contract, so the
builders, the webhook and the trainer cannot disagree. Every child carries a controller
ownerReference: deletion of the job is left to the garbage collector (no finalizer).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import yaml

from tftj.api import contract, naming
from tftj.api.models import API_VERSION, KIND
from tftj.api.resolve import ResolvedParameters, resolved_to_dict
from tftj.operator import kueue

Obj = dict[str, Any]

LABEL_JOB_NAME = "tftj.dev/job-name"
LABEL_ATTEMPT = "tftj.dev/attempt"
LABEL_PARAMETERS_HASH = "tftj.dev/parameters-hash"
LABEL_ROLE = "tftj.dev/role"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "tftj-operator"
KUEUE_QUEUE_LABEL = kueue.QUEUE_LABEL
ANNOTATION_PARAMETERS_HASH = "tftj.dev/parameters-hash"

TRAINER_CONTAINER = "trainer"
TRAINER_COMMAND = [
    "python",
    "-m",
    "tftj_trainer",
    "--params",
    f"{contract.PARAMS_DIR}/{contract.PARAMS_FILE}",
]
GPU_RESOURCE = "nvidia.com/gpu"
# The trainer image runs as this unprivileged user (see the Dockerfile); Pod Security
# "restricted" needs runAsNonRoot, and a numeric uid lets the kubelet check it.
TRAINER_UID = 1000
TENSORBOARD_PORT = 6006
PARAMS_VOLUME = "tftj-params"
STORAGE_VOLUME = "tftj-storage"
SCRATCH_VOLUME = "tftj-scratch"


def owner_reference(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_labels(name: str) -> dict[str, str]:
    """Labels on every child; `tftj.dev/job-name` is what the operator selects children by."""
    return {LABEL_JOB_NAME: name, LABEL_MANAGED_BY: MANAGED_BY}


def _meta(job: Obj, name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "namespace": job["metadata"]["namespace"],
        "labels": {**job_labels(job["metadata"]["name"]), **(labels or {})},
        "ownerReferences": [owner_reference(job)],
    }


_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PARAMS_YAML: OrderedDict[str, str] = OrderedDict()
_PARAMS_YAML_LOCK = threading.Lock()  # reconciles run in a thread pool
PARAMS_YAML_KEPT = 2048  # params.yaml texts remembered (~2 KB each, keyed by a digest)


def params_yaml(resolved: ResolvedParameters) -> str:
    """params.yaml of `resolved`. The same text is wanted at every look at a job's children
    (each job every minute or so): it is dumped once per distinct content and remembered,
    and with the C emitter (3-4x the pure-Python one, same text)."""
    wire = resolved_to_dict(resolved)
    key = hashlib.sha256(json.dumps(wire, separators=(",", ":")).encode()).hexdigest()
    with _PARAMS_YAML_LOCK:
        text = _PARAMS_YAML.get(key)
        if text is not None:
            _PARAMS_YAML.move_to_end(key)
    if text is None:
        text = yaml.dump(wire, Dumper=_DUMPER, sort_keys=False)
        with _PARAMS_YAML_LOCK:
            _PARAMS_YAML[key] = text
            if len(_PARAMS_YAML) > PARAMS_YAML_KEPT:
                _PARAMS_YAML.popitem(last=False)
    return text


def params_configmap(job: Obj, resolved: ResolvedParameters) -> Obj:
    """The resolved parameters, mounted at /etc/tftj: exactly what the trainer trains with."""
    name = job["metadata"]["name"]
    meta = _meta(job, naming.params_configmap_name(name))
    meta["annotations"] = {ANNOTATION_PARAMETERS_HASH: resolved.parameters_hash}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {contract.PARAMS_FILE: params_yaml(resolved)},
    }


def workers_service(job: Obj, resolved: ResolvedParameters) -> Obj:
    """Headless Service: each worker pod gets `<hostname>.<service>` in DNS."""
    name = job["metadata"]["name"]
    spec = resolved.spec
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(job, naming.workers_service_name(name)),
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_JOB_NAME: name, LABEL_ROLE: "worker"},
            # Workers resolve each other while starting, before any of them is Ready.
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "tf", "port": spec.workers.port, "targetPort": spec.workers.port},
                {"name": "metrics", "port": spec.metrics.port, "targetPort": spec.metrics.port},
            ],
        },
    }


def storage_claim(job: Obj, resolved: ResolvedParameters) -> Obj | None:
    """The PVC the operator creates when storage.size is set (None otherwise)."""
    storage = resolved.spec.storage
    if storage.size is None:
        return None
    name = job["metadata"]["name"]
    # One worker may use a node-local volume; several need a shared one.
    access = "ReadWriteMany" if resolved.spec.workers.replicas > 1 else "ReadWriteOnce"
    spec: Obj = {"accessModes": [access], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(job, naming.storage_claim_name(name)),
        "spec": spec,
    }


def storage_claim_name(job_name: str, resolved: ResolvedParameters) -> str | None:
    storage = resolved.spec.storage
    if storage.claim_name:
        return storage.claim_name
    if storage.size:
        return naming.storage_claim_name(job_name)
    return None


def _pod_security_context() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": TRAINER_UID,
        "runAsGroup": TRAINER_UID,
        "fsGroup": TRAINER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security_context() -> Obj:
    # Everything Pod Security "restricted" asks of a container, and a read-only root: the
    # trainer writes only to the storage root and to the scratch emptyDir.
    return {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


SCRATCH_MOUNT: Obj = {"name": SCRATCH_VOLUME, "mountPath": contract.SCRATCH_DIR}
SCRATCH_VOLUME_SPEC: Obj = {"name": SCRATCH_VOLUME, "emptyDir": {}}


def worker_hosts(job_name: str, attempt: int, replicas: int, port: int) -> str:
    service = naming.workers_service_name(job_name)
    return ",".join(
        f"{naming.worker_hostname(job_name, attempt, i)}.{service}:{port}" for i in range(replicas)
    )


def _storage_volume(job_name: str, resolved: ResolvedParameters) -> Obj:
    claim = storage_claim_name(job_name, resolved)
    if claim is None:
        return {"name": STORAGE_VOLUME, "emptyDir": {}}
    return {"name": STORAGE_VOLUME, "persistentVolumeClaim": {"claimName": claim}}


def _storage_mount(job_name: str, resolved: ResolvedParameters) -> Obj:
    mount: Obj = {"name": STORAGE_VOLUME, "mountPath": resolved.spec.storage.mount_path}
    if storage_claim_name(job_name, resolved) is not None:
        # Many jobs share one claim; each sees only its own directory.
        mount["subPath"] = job_name
    return mount


def _trainer_env(job_name: str, attempt: int, resolved: ResolvedParameters) -> list[Obj]:
    spec = resolved.spec
    ours = {
        contract.ENV_WORKER_HOSTS: worker_hosts(
            job_name, attempt, spec.workers.replicas, spec.workers.port
        ),
        contract.ENV_ATTEMPT: str(attempt),
        contract.ENV_STORAGE_ROOT: spec.storage.mount_path,
        contract.ENV_JOB_NAME: job_name,
    }
    # User variables come first and never shadow the contract's: the trainer relies on them.
    env: list[Obj] = [
        e.model_dump(by_alias=True, exclude_none=True)
        for e in spec.workers.pod_template.env
        if e.name not in ours
    ]
    env += [{"name": k, "value": v} for k, v in ours.items()]
    return env


def _resources(resolved: ResolvedParameters) -> Obj:
    workers = resolved.spec.workers
    requests = dict(workers.resources.requests)
    limits = dict(workers.resources.limits)
    if workers.gpus_per_worker > 0:
        # Extended resources: the limit is the request; GPUs come only from gpusPerWorker.
        limits[GPU_RESOURCE] = str(workers.gpus_per_worker)
        requests.pop(GPU_RESOURCE, None)
    return {"requests": requests, "limits": limits}


def worker_pod_labels(job_name: str, attempt: int, resolved: ResolvedParameters) -> dict[str, str]:
    return {
        **resolved.spec.workers.pod_template.labels,
        **job_labels(job_name),
        LABEL_ROLE: "worker",
        LABEL_ATTEMPT: str(attempt),
        LABEL_PARAMETERS_HASH: resolved.parameters_hash,
    }


#: The pod condition Kubernetes sets when it, not the workload, ends a pod: eviction API,
#: preemption, taint manager (node NotReady/unreachable), PodGC (node deleted).
DISRUPTION_TARGET = "DisruptionTarget"


def attempt_job(job: Obj, resolved: ResolvedParameters, attempt: int) -> Obj:
    """The batch/v1 Indexed Job running all workers of one attempt.

    backoffLimit 0: any worker failure ends the attempt, and the operator (not the Job
    controller) decides whether the whole group restarts — a synchronous all-reduce cannot
    continue with a replaced single worker anyway.
    """
    name = job["metadata"]["name"]
    spec = resolved.spec
    workers = spec.workers
    tpl = workers.pod_template
    labels = worker_pod_labels(name, attempt, resolved)
    job_meta_labels = {
        LABEL_ATTEMPT: str(attempt),
        LABEL_PARAMETERS_HASH: resolved.parameters_hash,
    }
    if spec.scheduling.queue_name:
        # Kueue suspends the Job on creation and unsuspends it when all workers fit.
        job_meta_labels[KUEUE_QUEUE_LABEL] = spec.scheduling.queue_name

    container: Obj = {
        "name": TRAINER_CONTAINER,
        "image": workers.image,
        "imagePullPolicy": workers.image_pull_policy,
        "command": list(TRAINER_COMMAND),
        "ports": [
            {"name": "tf", "containerPort": workers.port},
            {"name": "metrics", "containerPort": spec.metrics.port},
        ],
        "env": _trainer_env(name, attempt, resolved),
        "resources": _resources(resolved),
        "volumeMounts": [
            {"name": PARAMS_VOLUME, "mountPath": contract.PARAMS_DIR, "readOnly": True},
            _storage_mount(name, resolved),
            SCRATCH_MOUNT,
            *tpl.volume_mounts,
        ],
        "securityContext": _container_security_context(),
        # The trainer writes a one-line reason to /dev/termination-log; the log tail otherwise.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "subdomain": naming.workers_service_name(name),
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": PARAMS_VOLUME, "configMap": {"name": naming.params_configmap_name(name)}},
            _storage_volume(name, resolved),
            SCRATCH_VOLUME_SPEC,
            *tpl.volumes,
        ],
    }
    if tpl.node_selector:
        pod_spec["nodeSelector"] = dict(tpl.node_selector)
    if tpl.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in tpl.tolerations
        ]
    if tpl.affinity:
        pod_spec["affinity"] = tpl.affinity
    if tpl.service_account_name:
        pod_spec["serviceAccountName"] = tpl.service_account_name
    priority = spec.scheduling.priority_class_name or tpl.priority_class_name
    if priority:
        pod_spec["priorityClassName"] = priority
    if spec.scheduling.scheduler_name:
        pod_spec["schedulerName"] = spec.scheduling.scheduler_name

    annotations = dict(tpl.annotations)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(job, naming.attempt_job_name(name, attempt), job_meta_labels),
        "spec": {
            "completionMode": "Indexed",
            "completions": workers.replicas,
            "parallelism": workers.replicas,
            "backoffLimit": 0,
            # A disrupted worker (evicted, preempted, its node gone) fails the Job with reason
            # PodFailurePolicy naming DisruptionTarget: the operator can tell a disruption
            # from a worker failure even after the pods were deleted (node lost).
            "podFailurePolicy": {
                "rules": [{"action": "FailJob", "onPodConditions": [{"type": DISRUPTION_TARGET}]}]
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def tensorboard_children(job: Obj, resolved: ResolvedParameters) -> list[Obj]:
    """A TensorBoard Deployment + Service on the job's log directory, when enabled and there
    is persistent storage to read the logs from (validation warns otherwise)."""
    name = job["metadata"]["name"]
    spec = resolved.spec
    if not spec.tensorboard.enabled or storage_claim_name(name, resolved) is None:
        return []
    tb_name = naming.tensorboard_name(name)
    labels = {LABEL_ROLE: "tensorboard"}
    selector = {LABEL_JOB_NAME: name, LABEL_ROLE: "tensorboard"}
    logdir = f"{spec.storage.mount_path.rstrip('/')}/{spec.logging.directory}"
    mount = {**_storage_mount(name, resolved), "readOnly": True}
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(job, tb_name, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**job_labels(name), **labels}},
                "spec": {
                    "enableServiceLinks": False,
                    "securityContext": _pod_security_context(),
                    "containers": [
                        {
                            "name": "tensorboard",
                            "image": spec.tensorboard.image or spec.workers.image,
                            "command": [
                                "tensorboard",
                                "--logdir",
                                logdir,
                                "--bind_all",
                                "--port",
                                str(TENSORBOARD_PORT),
                            ],
                            "ports": [{"name": "http", "containerPort": TENSORBOARD_PORT}],
                            "volumeMounts": [mount, SCRATCH_MOUNT],
                            "securityContext": _container_security_context(),
                        }
                    ],
                    "volumes": [_storage_volume(name, resolved), SCRATCH_VOLUME_SPEC],
                },
            },
        },
    }
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(job, tb_name, labels),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": TENSORBOARD_PORT, "targetPort": "http"}],
        },
    }
    return [deployment, service]


def static_children(job: Obj, resolved: ResolvedParameters) -> list[Obj]:
    """Children that live as long as the job (everything but the per-attempt Jobs), in the
    order they must exist: the ConfigMap before any pod mounts it."""
    children = [params_configmap(job, resolved), workers_service(job, resolved)]
    claim = storage_claim(job, resolved)
    if claim is not None:
        children.append(claim)
    children += tensorboard_children(job, resolved)
    return children


def attempt_of(obj: Obj) -> int | None:
    """The attempt a worker Job or pod belongs to, from its label (None if not ours)."""
    value = (obj.get("metadata", {}).get("labels") or {}).get(LABEL_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
