// Pins the prometheus-operator module whose CRDs (example/prometheus-operator-crd) the chart's
// ServiceMonitor, PodMonitor and PrometheusRule are applied against in a real apiserver
// (tests/cluster/test_chart.py, testbin/promoperator.py). Nothing is built from it.
module tftj.dev/testbin/promoperator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
