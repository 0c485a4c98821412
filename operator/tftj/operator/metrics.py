"""The operator's own Prometheus metrics (served on --metrics-port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Gauge("tftj_operator_jobs", "TFTrainingJobs the operator watches, by phase", ["phase"])
RECONCILE_SECONDS = Histogram(
    "tftj_operator_reconcile_duration_seconds",
    "Time to observe a TFTrainingJob's children, decide and apply the plan",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_PHASE = Gauge(
    "tftj_operator_job_phase",
    "1 for each TFTrainingJob's current phase (what alerts on a failed job select on)",
    ["namespace", "name", "phase"],
)
RECONCILES = Counter("tftj_operator_reconciles_total", "Reconciles by result", ["result"])
# Every result is exported from the start (at 0), so an error ratio has a series to compute
# before the first error, as Prometheus' instrumentation guide recommends.
RECONCILE_RESULTS = ("ok", "conflict", "error")
for _result in RECONCILE_RESULTS:
    RECONCILES.labels(_result)
RESTARTS = Counter(
    "tftj_operator_restarts_total", "Whole-group restarts started after a retryable failure"
)
ADMISSIONS = Counter(
    "tftj_operator_admission_requests_total",
    "Admission reviews of TFTrainingJobs by operation and result (allowed, denied, error)",
    ["operation", "result"],
)
ADMISSION_SECONDS = Histogram(
    "tftj_operator_admission_duration_seconds",
    "Time to validate one admission review",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
ERRORS = Counter("tftj_operator_errors_total", "Errors while reconciling, by kind", ["kind"])
ERROR_KINDS = ("api", "connection", "internal")
for _kind in ERROR_KINDS:
    ERRORS.labels(_kind)
QUEUE_DEPTH = Gauge("tftj_operator_work_queue_depth", "TFTrainingJobs waiting to be reconciled")
# What the operator holds in memory, counted at scrape time: both follow the live objects, so
# growth with no more jobs alive is a leak (the soak test checks they return to zero).
CACHE_OBJECTS = Gauge(
    "tftj_operator_cache_objects",
    "Objects in the operator's watch-fed cache, by kind (TFTrainingJob, Job, Pod)",
    ["kind"],
)
INDEX_ENTRIES = Gauge(
    "tftj_operator_index_entries",
    "Entries in the controller's per-job and per-child bookkeeping, by index",
    ["index"],
)
PHASES = ("Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed")


class PhaseTracker:
    """Keeps tftj_operator_jobs in line with the last phase seen per job."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}
        for phase in PHASES:
            JOBS.labels(phase).set(0)

    def set(self, key: tuple[str, str], phase: str | None) -> None:
        old = self._phases.pop(key, None)
        if phase:
            self._phases[key] = phase
        if old != phase:
            if old:
                JOB_PHASE.remove(*key, old)
            if phase:
                JOB_PHASE.labels(*key, phase).set(1)
            self._publish()

    def forget(self, key: tuple[str, str]) -> None:
        self.set(key, None)

    def __len__(self) -> int:
        return len(self._phases)

    def _publish(self) -> None:
        counts = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            JOBS.labels(phase).set(count)


IS_LEADER = Gauge(
    "tftj_operator_is_leader",
    "1 while this replica reconciles (it holds the leader Lease, or runs without leader "
    "election); 0 while it only serves the webhook",
)
LEADER_TRANSITIONS = Counter(
    "tftj_operator_leader_transitions_total",
    "Times this replica became the leader (summed over replicas: the Lease's holder changes)",
)
