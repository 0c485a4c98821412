"""The one source of tftj's monitoring bundle: every PromQL expression of the Grafana dashboard
and of the Prometheus alerting rules is written here once, from the metric names of
tftj.api.contract (trainer) and tftj.operator.metrics (operator).

    python -m tftj.monitoring rules      > charts/tftj/files/prometheus-rules.yaml
    python -m tftj.monitoring dashboard  > charts/tftj/files/grafana-dashboard.json

(`make generate`; a unit test fails when the files are stale.) The chart wraps them in a
PrometheusRule and a ConfigMap for Grafana's dashboard sidecar.

Trainer series carry `job` (the TFTrainingJob's name) and `worker` labels; the chart's
PodMonitor scrapes them with honorLabels so `job` stays the TFTrainingJob's name, and
Prometheus adds `namespace` and `pod`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from tftj.api import contract

# Operator metric names (tftj.operator.metrics defines them; importing it would pull in
# prometheus_client for a module that only writes text).
OPERATOR_JOB_PHASE = "tftj_operator_job_phase"
OPERATOR_JOBS = "tftj_operator_jobs"
OPERATOR_RECONCILES = "tftj_operator_reconciles_total"
OPERATOR_RECONCILE_SECONDS = "tftj_operator_reconcile_duration_seconds"
OPERATOR_QUEUE_DEPTH = "tftj_operator_work_queue_depth"
OPERATOR_IS_LEADER = "tftj_operator_is_leader"
OPERATOR_ADMISSION_SECONDS = "tftj_operator_admission_duration_seconds"
OPERATOR_ERRORS = "tftj_operator_errors_total"

#: The dashboard's job filter (a Grafana template variable); rules select every job.
DASHBOARD_MATCHERS = 'namespace=~"$namespace", job=~"$job"'
NO_PROGRESS_MINUTES = 15
RESTARTS_WINDOW = "1h"
RESTARTS_LIMIT = 3
RECONCILE_ERROR_RATIO = 0.1
CHIEF = 'worker="0"'  # throughput, ETA and progress are the chief's (the same on every worker)


def sel(metric: str, matchers: str = "", *extra: str) -> str:
    """`metric{matchers, extra...}`: one selector syntax for the dashboard and the rules."""
    inside = ", ".join(m for m in (matchers, *extra) if m)
    return f"{metric}{{{inside}}}" if inside else metric


# ---------------------------------------------------------------- the expressions, once


def training_loss(m: str = "") -> str:
    return sel(contract.METRIC_LOSS, m)


def training_metrics(m: str = "") -> str:
    return sel(contract.METRIC_VALUE, m)


def examples_per_second(m: str = "") -> str:
    return f"sum by (namespace, job) ({sel(contract.METRIC_EXAMPLES_PER_SECOND, m, CHIEF)})"


def step_time(quantile: float, m: str = "") -> str:
    buckets = sel(contract.METRIC_STEP_DURATION + "_bucket", m)
    return f"histogram_quantile({quantile}, sum by (namespace, job, le) (rate({buckets}[5m])))"


def epoch_progress(m: str = "") -> str:
    """Epochs done / epochs to train, 0..1."""
    done = sel(contract.METRIC_EPOCH, m, CHIEF)
    total = sel(contract.METRIC_EPOCHS_TARGET, m, CHIEF)
    return f"max by (namespace, job) ({done}) / max by (namespace, job) ({total} > 0)"


def eta_seconds(m: str = "") -> str:
    return f"max by (namespace, job) ({sel(contract.METRIC_ETA_SECONDS, m, CHIEF)})"


def learning_rate(m: str = "") -> str:
    return f"max by (namespace, job) ({sel(contract.METRIC_LEARNING_RATE, m, CHIEF)})"


def restarts_in_window(m: str = "", window: str = RESTARTS_WINDOW) -> str:
    """Attempts started within `window`: each whole-group restart is a new attempt number."""
    attempt = sel(contract.METRIC_ATTEMPT, m)
    return (
        f"max by (namespace, job) (max_over_time({attempt}[{window}]))"
        f" - min by (namespace, job) (min_over_time({attempt}[{window}]))"
    )


def attempt(m: str = "") -> str:
    return f"max by (namespace, job) ({sel(contract.METRIC_ATTEMPT, m)})"


def step_changes(minutes: int = NO_PROGRESS_MINUTES) -> str:
    """How often the chief's step moved in the last `minutes` (0: no progress)."""
    step = sel(contract.METRIC_STEP, CHIEF)
    return f"max by (namespace, job) (changes({step}[{minutes}m]))"


def failed_jobs() -> str:
    return sel(OPERATOR_JOB_PHASE, 'phase="Failed"')


def jobs_by_phase() -> str:
    return f"sum by (phase) ({OPERATOR_JOBS})"


def reconcile_rate() -> str:
    return f"sum by (result) (rate({OPERATOR_RECONCILES}[5m]))"


def reconcile_error_ratio() -> str:
    errors = sel(OPERATOR_RECONCILES, 'result="error"')
    return f"sum(rate({errors}[10m])) / clamp_min(sum(rate({OPERATOR_RECONCILES}[10m])), 1e-9)"


def reconcile_latency(quantile: float) -> str:
    buckets = OPERATOR_RECONCILE_SECONDS + "_bucket"
    return f"histogram_quantile({quantile}, sum by (le) (rate({buckets}[5m])))"


def operator_errors() -> str:
    return f"sum by (kind) (rate({OPERATOR_ERRORS}[5m]))"


def queue_depth() -> str:
    return OPERATOR_QUEUE_DEPTH


def leaders() -> str:
    """How many replicas reconcile (1 with leader election working; 0: none holds the Lease)."""
    return f"max({OPERATOR_IS_LEADER})"


def webhook_latency(quantile: float) -> str:
    buckets = OPERATOR_ADMISSION_SECONDS + "_bucket"
    return f"histogram_quantile({quantile}, sum by (operation, le) (rate({buckets}[5m])))"


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str  # returns series whenever its inputs are scraped (the test checks this)
    condition: str  # appended to signal: when it holds, the alert is pending/firing;
    # "absent": the alert fires while the signal has no series at all
    for_: str
    severity: str
    summary: str
    description: str

    @property
    def expr(self) -> str:
        if self.condition == "absent":
            return f"absent({self.signal})"
        return f"{self.signal} {self.condition}"


ALERTS = (
    Alert(
        "TFTrainingJobFailed",
        failed_jobs(),
        "== 1",
        "0m",
        "warning",
        "TFTrainingJob {{ $labels.namespace }}/{{ $labels.name }} failed",
        "The job is in phase Failed: `kubectl describe tftj {{ $labels.name }} -n "
        "{{ $labels.namespace }}` shows the Failed condition and status.lastFailure.",
    ),
    Alert(
        "TFTrainingJobRestartingRepeatedly",
        restarts_in_window(),
        f">= {RESTARTS_LIMIT}",
        "0m",
        "warning",
        "TFTrainingJob {{ $labels.namespace }}/{{ $labels.job }} restarted "
        f"{{{{ $value }}}} times in {RESTARTS_WINDOW}",
        "Whole-group restarts after retryable failures (lost peers, evictions, OOM kills). "
        "Each restart resumes from the latest checkpoint; see status.lastFailure.",
    ),
    Alert(
        "TFTrainingJobNoProgress",
        step_changes(),
        "== 0",
        "5m",
        "warning",
        "TFTrainingJob {{ $labels.namespace }}/{{ $labels.job }} made no training progress "
        f"for {NO_PROGRESS_MINUTES} minutes",
        "The chief's tftj_trainer_step has not moved: a worker may be stuck (waiting for a "
        "peer, reading data). Make this window longer than the time between progress reports "
        "(logging.frequency steps).",
    ),
    Alert(
        "TFTJOperatorDown",
        queue_depth(),
        "absent",
        "5m",
        "critical",
        "The tftj operator is not scraped",
        "No tftj_operator_* series for 5 minutes: the operator is down (or no longer "
        "scraped). TFTrainingJobs are neither validated nor reconciled.",
    ),
    Alert(
        "TFTJOperatorNoLeader",
        leaders(),
        "== 0",
        "5m",
        "critical",
        "No tftj operator replica is reconciling",
        "The replicas answer (and admit) but none has held the leader Lease for 5 minutes: "
        "TFTrainingJobs are accepted and never run. See the Lease tftj-operator in the "
        "operator's namespace and the replicas' logs (leader election).",
    ),
    Alert(
        "TFTJOperatorReconcileErrors",
        reconcile_error_ratio(),
        f"> {RECONCILE_ERROR_RATIO}",
        "10m",
        "warning",
        "tftj operator: {{ $value | humanizePercentage }} of reconciles fail",
        "See the operator's log and tftj_operator_errors_total by kind (api, connection, "
        "internal).",
    ),
)


def rules() -> dict[str, Any]:
    """A Prometheus rules file (promtool check rules; the chart's PrometheusRule spec)."""
    return {
        "groups": [
            {
                "name": "tftj",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": {"summary": a.summary, "description": a.description},
                    }
                    for a in ALERTS
                ],
            }
        ]
    }


# ---------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    row: str = "Training"
    extra: dict[str, Any] = field(default_factory=dict)


M = DASHBOARD_MATCHERS
PANELS = (
    Panel(
        "Loss",
        "Training and validation loss per job.",
        (Target(training_loss(M), "{{job}} {{split}}"),),
    ),
    Panel(
        "Metrics",
        "The job's training.metrics, training and validation.",
        (Target(training_metrics(M), "{{job}} {{split}} {{name}}"),),
    ),
    Panel(
        "Examples per second",
        "Global training throughput (all workers), from the chief.",
        (Target(examples_per_second(M), "{{job}}"),),
    ),
    Panel(
        "Step time",
        "Optimizer step duration, median and 90th percentile, input and hooks included.",
        (Target(step_time(0.5, M), "{{job}} p50"), Target(step_time(0.9, M), "{{job}} p90")),
        unit="s",
    ),
    Panel(
        "Epoch progress",
        "Epochs done out of epochs to train.",
        (Target(epoch_progress(M), "{{job}}"),),
        unit="percentunit",
    ),
    Panel(
        "ETA",
        "Estimated time until training completes (from the recent throughput).",
        (Target(eta_seconds(M), "{{job}}"),),
        unit="s",
    ),
    Panel(
        "Attempt (restarts)",
        "The attempt number: each whole-group restart adds one.",
        (Target(attempt(M), "{{job}}"),),
    ),
    Panel(
        "Learning rate",
        "The optimizer's learning rate after scaling, warm-up and decay.",
        (Target(learning_rate(M), "{{job}}"),),
    ),
    Panel(
        "Reconciles",
        "Operator reconciles per second by result (ok, conflict, error).",
        (Target(reconcile_rate(), "{{result}}"),),
        unit="ops",
        row="Operator",
    ),
    Panel(
        "Reconcile latency",
        "Time to observe a job's children, decide and apply the plan.",
        (
            Target(reconcile_latency(0.5), "p50"),
            Target(reconcile_latency(0.99), "p99"),
        ),
        unit="s",
        row="Operator",
    ),
    Panel(
        "Reconcile errors",
        "Errors per second by kind (api, connection, internal).",
        (Target(operator_errors(), "{{kind}}"),),
        unit="ops",
        row="Operator",
    ),
    Panel(
        "Work queue depth",
        "TFTrainingJobs waiting to be reconciled.",
        (Target(queue_depth(), "depth"),),
        row="Operator",
    ),
    Panel(
        "Webhook latency",
        "Admission review duration (p99) by operation.",
        (Target(webhook_latency(0.99), "{{operation}} p99"),),
        unit="s",
        row="Operator",
    ),
    Panel(
        "Jobs by phase",
        "TFTrainingJobs the operator watches, by phase.",
        (Target(jobs_by_phase(), "{{phase}}"),),
        row="Operator",
    ),
)


def dashboard_variable_values() -> dict[str, str]:
    """What the template variables stand for when a test runs the dashboard's queries."""
    return {"$namespace": ".*", "$job": ".*"}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": t.expr,
                "legendFormat": t.legend,
            }
            for i, t in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    """A Grafana dashboard (schemaVersion 39) with one row per section."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in dict.fromkeys(p.row for p in PANELS):
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for i, panel in enumerate(p for p in PANELS if p.row == row):
            panels.append(_panel(panel, next_id, 12 * (i % 2), y + 8 * (i // 2)))
            next_id += 1
        y += 8 * ((sum(1 for p in PANELS if p.row == row) + 1) // 2)
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    return {
        "uid": "tftj-training",
        "title": "tftj: TFTrainingJobs",
        "tags": ["tftj", "tensorflow"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": datasource,
                    "query": f"label_values({contract.METRIC_EPOCH}, namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "refresh": 2,
                },
                {
                    "name": "job",
                    "label": "TFTrainingJob",
                    "type": "query",
                    "datasource": datasource,
                    "query": f'label_values({contract.METRIC_EPOCH}{{namespace=~"$namespace"}}, job)',
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


def queries() -> dict[str, str]:
    """Every dashboard expression and every alert's signal by a readable name: each returns
    series once a trainer and the operator are scraped (a test runs them all)."""
    found = {f"panel {p.title} [{t.legend}]": t.expr for p in PANELS for t in p.targets}
    found.update({f"alert {a.name} signal": a.signal for a in ALERTS})
    return found


def rules_yaml() -> str:
    header = "# Generated by `python -m tftj.monitoring rules` (operator/tftj/monitoring.py).\n"
    return header + yaml.safe_dump(rules(), sort_keys=False, width=100)


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    outputs = {"rules": rules_yaml, "dashboard": dashboard_json}
    if len(argv) != 1 or argv[0] not in outputs:
        sys.stderr.write("usage: python -m tftj.monitoring rules|dashboard\n")
        return 2
    sys.stdout.write(outputs[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
