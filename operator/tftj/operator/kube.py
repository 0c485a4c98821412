"""The operator's side effects on the cluster: reading what a TFTrainingJob owns into an
`Observed`, applying a `Plan`, scraping the chief's /metrics. Synchronous (the kubernetes
client); the kopf wiring runs it in a thread pool.

The order of apply_plan is part of the crash-safety argument in tftj.operator.reconcile:
status first, then deletions, creations, patches, events.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tftj.api import GROUP, PLURAL, VERSION, naming
from tftj.api.models import MetricsSpec
from tftj.operator import kueue
from tftj.operator.children import LABEL_ATTEMPT, LABEL_JOB_NAME, LABEL_ROLE, Obj
from tftj.operator.reconcile import Observed, Plan, rfc3339
from tftj.operator.status import chief_pod, is_suspended
from tftj.operator.transforms import lean_job, lean_pod
from tftj.trainerprogress import read_trainer_progress

log = logging.getLogger("tftj.operator")

MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "tftj-operator"

Listing = tuple[list[Obj], str | None]  # items, the list's resourceVersion


class Gone(Exception):
    """The TFTrainingJob no longer exists."""


class Conflict(Exception):
    """The TFTrainingJob changed while it was being reconciled: reconcile again at once."""


def _ignore(status: int, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ApiException as exc:
        if exc.status == status:
            return None
        raise


def _raw(response: Any) -> Obj:
    """The JSON body of a call made with `_preload_content=False`: the client's typed models
    cost more CPU to build (and to turn back into dicts) than the rest of a reconcile."""
    body: Obj = json.loads(response.data)
    return body


def _drain(response: Any) -> None:
    """Read and drop the body of a write made with `_preload_content=False` (what the operator
    writes is all it needs to know; reading the body to the end frees the connection)."""
    _ = response.data


def _list_version(listing: Obj) -> str | None:
    version = (listing.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _mapping(value: Any) -> Obj:
    """`value` if it is a mapping, else empty: the raw spec is read before it is validated, and
    a spec the schema rejects is reconcile()'s to report (InvalidSpec), not a crash here."""
    return value if isinstance(value, dict) else {}


class TimeoutApiClient(client.ApiClient):
    """An ApiClient whose every request gives up after `timeout` seconds unless the call sets
    its own. The kubernetes client waits forever by default: behind a network partition that
    drops packets, a reconcile worker would block for good and the operator stop working."""

    def __init__(self, configuration: client.Configuration, *, timeout: float) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout or self.timeout
        )


class Kube:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        scrape_timeout: float = 2.0,
        scrape_allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.scrape_timeout = scrape_timeout
        self._events = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="events")
        # When set, the operator never connects to a pod IP outside these networks.
        self.scrape_allowed = list(scrape_allowed)

    # ------------------------------------------------------------------ reading

    def get_job(self, namespace: str, name: str) -> Obj:
        try:
            job: Obj = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise Gone(f"{namespace}/{name}") from exc
            raise
        return job

    def _get_child(self, kind: str, namespace: str, name: str) -> Obj | None:
        readers: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.read_namespaced_config_map,
            "Service": self.core.read_namespaced_service,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
            "Deployment": self.apps.read_namespaced_deployment,
        }
        found = _ignore(404, lambda: readers[kind](name, namespace, _preload_content=False))
        return None if found is None else _raw(found)

    def list_workers(self, namespace: str, name: str) -> tuple[Listing, Listing]:
        """Every worker Job and worker pod labelled with the job's name, straight from the
        apiserver, in their lean forms (tftj.operator.transforms), each with the listing's
        resourceVersion (see cache.Cache.prune)."""
        jobs = _raw(
            self.batch.list_namespaced_job(
                namespace,
                label_selector=f"{LABEL_JOB_NAME}={name},{LABEL_ATTEMPT}",
                _preload_content=False,
            )
        )
        pods = _raw(
            self.core.list_namespaced_pod(
                namespace,
                label_selector=f"{LABEL_JOB_NAME}={name},{LABEL_ROLE}=worker",
                _preload_content=False,
            )
        )
        return (
            ([lean_job(j) for j in jobs.get("items") or []], _list_version(jobs)),
            ([lean_pod(p) for p in pods.get("items") or []], _list_version(pods)),
        )

    def observe(
        self,
        job: Obj,
        *,
        scrape: bool,
        children: bool = True,
        workers: tuple[list[Obj], list[Obj]] | None = None,
    ) -> Observed:
        """What `job` owns now. `workers` (worker Jobs, worker pods) come from the caller's
        cache when given, else from the apiserver; `children=False` skips reading the
        long-lived children (Observed.children is None)."""
        meta = job["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if not job.get("status"):
            # Never reconciled: the operator writes status before creating any child, so
            # there is nothing to read yet (a third of a new job's API requests).
            return Observed(job=job, children={}, attempt_jobs=[], pods=[], now=datetime.now(UTC))
        spec = _mapping(job.get("spec"))
        wanted = [
            ("ConfigMap", naming.params_configmap_name(name)),
            ("Service", naming.workers_service_name(name)),
        ]
        if _mapping(spec.get("storage")).get("size"):
            wanted.append(("PersistentVolumeClaim", naming.storage_claim_name(name)))
        if _mapping(spec.get("tensorboard")).get("enabled"):
            wanted += [
                ("Deployment", naming.tensorboard_name(name)),
                ("Service", naming.tensorboard_name(name)),
            ]
        terminal = (job.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        found_children: dict[tuple[str, str], Obj] | None = None
        if children and not terminal:
            found_children = {}
            for kind, child in wanted:
                found = self._get_child(kind, namespace, child)
                if found is not None:
                    found_children[(kind, child)] = found
        if workers is None:
            (job_items, _), (pod_items, _) = self.list_workers(namespace, name)
        else:
            job_items, pod_items = workers
        current = (job.get("status") or {}).get("attempt", 0)
        progress = None
        if scrape and not terminal:
            chief = chief_pod(
                [
                    p
                    for p in pod_items
                    if (p["metadata"].get("labels") or {}).get(LABEL_ATTEMPT) == str(current)
                ]
            )
            if chief is not None:
                progress = self.scrape(
                    chief["status"]["podIP"], _mapping(spec.get("metrics")).get("port")
                )
        workload = None
        if _mapping(spec.get("scheduling")).get("queueName") and not terminal:
            held = [
                j
                for j in job_items
                if (j["metadata"].get("labels") or {}).get(LABEL_ATTEMPT) == str(current)
                and is_suspended(j)
            ]
            if held:
                workload = self.workload(namespace, str(held[0]["metadata"].get("uid") or ""))
        return Observed(
            job=job,
            children=found_children,
            attempt_jobs=job_items,
            pods=pod_items,
            now=datetime.now(UTC),
            progress=progress,
            workload=workload,
        )

    def workload(self, namespace: str, job_uid: str) -> Obj | None:
        """Kueue's Workload of a worker Job, or None: not created yet, or Kueue's API is not
        installed or not readable (the status then says less, nothing breaks)."""
        try:
            found: Any = self.custom.list_namespaced_custom_object(
                kueue.WORKLOAD_GROUP,
                kueue.WORKLOAD_VERSION,
                namespace,
                kueue.WORKLOAD_PLURAL,
                label_selector=f"{kueue.JOB_UID_LABEL}={job_uid}",
            )
        except ApiException as exc:
            log.debug("Kueue Workload of Job %s not read: %s", job_uid, exc.reason)
            return None
        items = list(found.get("items") or [])
        return dict(items[0]) if items else None

    def scrape(self, ip: str, port: Any) -> dict[str, Any] | None:
        """The chief's progress as status.progress, or None when it cannot be read right now
        (see read_trainer_progress: any failure leaves status.progress as it was)."""
        try:
            address = self._metrics_address(ip, port)
        except (ValueError, TypeError) as exc:  # a pod IP or a port that cannot be one
            log.debug("progress of %s:%s not read: %s", ip, port, exc)
            return None
        if address is None:
            return None
        progress = read_trainer_progress(*address, timeout=self.scrape_timeout)
        return progress.to_status() if progress is not None else None

    def _metrics_address(self, ip: str, port: Any) -> tuple[str, int] | None:
        """(host, port) of the chief's /metrics; None for an address outside scrape_allowed."""
        address = ipaddress.ip_address(ip)
        if self.scrape_allowed and not any(address in net for net in self.scrape_allowed):
            return None
        number = MetricsSpec().port if port is None else int(port)
        if not 0 < number < 65536:
            raise ValueError(f"metrics port {port!r} is not a TCP port")
        return ip, number

    # ------------------------------------------------------------------ writing

    def apply_plan(self, job: Obj, plan: Plan) -> Obj | None:
        """Apply `plan`; return the job as the status write left it (None: no status write).
        Returning at all means every creation, deletion and patch went through."""
        written: Obj | None = None
        meta = job["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if plan.status is not None:
            body = {
                # The precondition makes a reconcile from a stale read fail instead of
                # overwriting a newer decision (e.g. a restart already counted).
                "metadata": {"resourceVersion": meta["resourceVersion"]},
                "status": plan.status,
            }
            try:
                result: Any = self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, body
                )
                written = result if isinstance(result, dict) else None
            except ApiException as exc:
                if exc.status == 409:
                    raise Conflict(f"{namespace}/{name}") from exc
                if exc.status == 404:
                    raise Gone(f"{namespace}/{name}") from exc
                raise
        for deletion in plan.deletions:
            _ignore(
                404,
                lambda d=deletion: _drain(  # type: ignore[misc]
                    self.batch.delete_namespaced_job(
                        d.name, namespace, propagation_policy=d.propagation, _preload_content=False
                    )
                ),
            )
        for obj in plan.creates:
            self._create(namespace, obj)
        for patch in plan.patches:
            self._patch(namespace, patch)
        for event in plan.events:
            # Events are a courtesy: posting them must not hold up the next reconcile.
            self._events.submit(self.post_event, job, event.type, event.reason, event.message)
        if plan.delete_job:
            _ignore(
                404,
                lambda: self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Background"
                ),
            )
        return written

    def _create(self, namespace: str, obj: Obj) -> None:
        creators: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.create_namespaced_config_map,
            "Service": self.core.create_namespaced_service,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "Deployment": self.apps.create_namespaced_deployment,
            "Job": self.batch.create_namespaced_job,
        }
        # AlreadyExists means an earlier reconcile (maybe before a crash) created it.
        _ignore(409, lambda: _drain(creators[obj["kind"]](namespace, obj, _preload_content=False)))

    def _patch(self, namespace: str, patch: Obj) -> None:
        patchers: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.patch_namespaced_config_map,
            "Service": self.core.patch_namespaced_service,
            "Deployment": self.apps.patch_namespaced_deployment,
        }
        name = patch["metadata"]["name"]
        _ignore(
            404,
            lambda: _drain(
                patchers[patch["kind"]](
                    name, namespace, patch, _content_type=MERGE_PATCH, _preload_content=False
                )
            ),
        )

    def post_event(self, job: Obj, type_: str, reason: str, message: str) -> None:
        meta = job["metadata"]
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": job["apiVersion"],
                "kind": job["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }
        try:
            _drain(
                self.core.create_namespaced_event(
                    meta["namespace"],
                    body,  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            # An event is a courtesy; losing one must not fail the reconcile.
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.reason)
        except (HTTPError, OSError) as exc:
            # Posted from a thread pool, whose futures nobody reads: say it here or never.
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc)
