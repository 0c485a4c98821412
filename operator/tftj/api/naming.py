"""Deterministic names of everything a TFTrainingJob owns, and the name-length limit they imply.

A child's name must be a valid DNS-1035 label (<= 63 characters) when it is a Service or a pod
hostname, so the job's own name is limited by its longest derived name. The rule in validation
and the operator's builders both use these functions: they cannot disagree.
"""

from __future__ import annotations

DNS_LABEL_MAX = 63
MAX_ATTEMPT_DIGITS = 3  # runPolicy.backoffLimit <= 100, so attempts 0..100
MAX_INDEX_DIGITS = 4  # workers.replicas <= 1024, so worker indexes 0..1023


def params_configmap_name(job: str) -> str:
    return f"{job}-params"


def workers_service_name(job: str) -> str:
    return f"{job}-workers"


def attempt_job_name(job: str, attempt: int) -> str:
    """Each attempt is its own batch/v1 Job, so old and new attempts never mix."""
    return f"{job}-a{attempt}"


def worker_hostname(job: str, attempt: int, index: int) -> str:
    """An Indexed Job's pod hostname is `<job-name>-<index>`."""
    return f"{attempt_job_name(job, attempt)}-{index}"


def storage_claim_name(job: str) -> str:
    return f"{job}-storage"


def tensorboard_name(job: str) -> str:
    return f"{job}-tensorboard"


def _longest_children(job: str) -> list[str]:
    worst_attempt = int("9" * MAX_ATTEMPT_DIGITS)
    worst_index = int("9" * MAX_INDEX_DIGITS)
    return [
        params_configmap_name(job),
        workers_service_name(job),
        worker_hostname(job, worst_attempt, worst_index),
        storage_claim_name(job),
        tensorboard_name(job),
    ]


def max_job_name_length() -> int:
    """Longest metadata.name whose every derived name still fits in a DNS label."""
    overhead = max(len(name) for name in _longest_children(""))
    return DNS_LABEL_MAX - overhead
