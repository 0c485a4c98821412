# Thin wrappers: every target calls one script or tool; logic lives in the scripts.
PY      := .venv/bin/python
VENV_OK := .venv/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup system-deps prerequisites lint test test-unit test-trainer test-cluster test-node demo up up-real down testbin images crd docs generate bench clean

setup: $(VENV_OK)

$(VENV_OK): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[operator,trainer,dev]'
	rm -f .venv/.installed-* && touch $@

# Debian packages the tests use (prometheus + promtool); installs only what is missing.
system-deps:
	bash .ci/system-deps.sh

testbin:
	bash testbin/build.sh

# The real node's images (base from Debian packages, operator + trainer from the Dockerfile,
# pause), built with buildah and cached by a hash of their inputs (see docs/local-cluster.md).
images: system-deps
	bash testbin/images.sh

lint: setup
	.venv/bin/ruff check operator trainer_image tests bench testbin
	.venv/bin/ruff format --check operator trainer_image tests bench testbin
	.venv/bin/mypy operator/tftj trainer_image/tftj_trainer
	.venv/bin/lint-imports

test: prerequisites lint
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

# What the tests need, built side by side: the Go builds are CPU-bound while the venv, the
# Debian packages and the image builds mostly wait on downloads and disk, so on a fresh
# machine overlapping them shortens `make test` (figures in docs/local-cluster.md). With
# everything cached each step is a no-op of seconds. Output is not synced on purpose (make would
# hold a 30-minute build's progress until it ends); every script prefixes its own lines.
prerequisites:
	$(MAKE) --no-print-directory -j4 setup system-deps testbin images

test-unit: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-trainer: setup system-deps
	$(PY) -m pytest -q tests/trainer $(PYTEST_ARGS)

test-cluster: setup system-deps testbin
	$(PY) -m pytest -q tests/cluster $(PYTEST_ARGS)

test-node: setup system-deps testbin images
	$(PY) -m pytest -q tests/node $(PYTEST_ARGS)

demo: setup
	.venv/bin/tftj run examples/digits-mlp.yaml --workers 2 --workdir .work/demo

# A real control plane on loopback + the CRD + the operator and its webhook (see docs/local-cluster.md).
up: setup testbin
	$(PY) testbin/localcluster.py up --state-dir .cluster
	$(PY) testbin/devoperator.py up --kubeconfig .cluster/kubeconfig --state-dir .cluster/operator

# A real node (kubelet + containerd) next to the kwok nodes running the images built from the
# Dockerfile, with the operator installed IN the cluster by the Helm chart.
up-real: setup system-deps testbin images
	$(PY) testbin/localcluster.py up --real-node --state-dir .cluster
	$(PY) testbin/chartoperator.py up --kubeconfig .cluster/kubeconfig

down:
	-$(PY) testbin/devoperator.py down --kubeconfig .cluster/kubeconfig --state-dir .cluster/operator
	$(PY) testbin/localcluster.py down --state-dir .cluster

# Regenerate the files derived from the schema (a unit test fails when they are stale).
generate: setup
	.venv/bin/tftj crd > crds/tftrainingjobs.tftj.dev.yaml
	.venv/bin/tftj docs > docs/parameters.md
	.venv/bin/python -m tftj.monitoring rules > charts/tftj/files/prometheus-rules.yaml
	.venv/bin/python -m tftj.monitoring dashboard > charts/tftj/files/grafana-dashboard.json

bench: setup system-deps testbin images
	$(PY) bench/run_all.py

clean:
	rm -rf .venv .work .cluster testbin/bin
