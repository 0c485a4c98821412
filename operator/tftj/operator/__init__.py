"""The tftj operator: a pure reconcile core (reconcile, children, conditions, status, progress)
and thin edges (kopf wiring in handlers, the Kubernetes client in kube, the admission webhook,
operator metrics). Only the edges import kopf or the kubernetes client.
"""
