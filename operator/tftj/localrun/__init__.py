"""`tftj run`: a TFTrainingJob's workers as local processes, without Kubernetes.

manifest.py turns the manifest into the resolved parameters of a local, CPU-only run;
workers.py starts, watches and stops the worker group; progress.py reads the chief's /metrics
into a progress line; runner.py ties them together with the restart policy the operator uses.
"""
