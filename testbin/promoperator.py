"""The prometheus-operator CRDs the chart's monitoring objects are written against.

The chart renders a ServiceMonitor, a PodMonitor and a PrometheusRule (monitoring.coreos.com/v1)
for clusters that run the Prometheus operator. The operator itself is not run here; its CRDs
are installed into the local apiserver from the pinned module (testbin/promoperator/go.mod,
example/prometheus-operator-crd/), so the apiserver validates what the chart renders against
the real schemas: strict field validation refuses an unknown or misspelled field, which a
cluster would otherwise prune silently.
"""

from __future__ import annotations

from pathlib import Path

from kueuecluster import module_source

MODULE = "github.com/prometheus-operator/prometheus-operator"
MODULE_DIR = Path(__file__).resolve().parent / "promoperator"
CRD_DIR = Path("example/prometheus-operator-crd")
#: The kinds the chart renders, by plural.
PLURALS = ("servicemonitors", "podmonitors", "prometheusrules")


def monitoring_crds() -> tuple[str, list[Path]]:
    """(module version, CRD files of PLURALS) from the pinned module in GOMODCACHE."""
    version, source = module_source(MODULE_DIR, MODULE)
    return version, [
        source / CRD_DIR / f"monitoring.coreos.com_{plural}.yaml" for plural in PLURALS
    ]
