# Two images from one source tree:
#   docker build --target operator -t tftj/operator:0.1.0 .
#   docker build --target trainer  -t tftj/trainer:0.1.0 .
# Both run as the unprivileged uid 1000 the operator's worker pods ask for (runAsNonRoot),
# so they pass Pod Security "restricted".
# Image references name no registry host: the builder's configured default registry or mirror
# resolves them. The base is pinned by tag (patch release + Debian release); override with
# --build-arg PYTHON_IMAGE=... (e.g. a digest-pinned mirror copy).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- dependency lists
# Dependencies install in their own stage, from lists that hold no source: a code change
# rebuilds only the wheel of the package and its small layer instead of reinstalling
# TensorFlow. The lists hold only [project] dependencies + one extra, so editing the dev
# dependencies (or anything else in pyproject.toml) leaves the dependency layers cached.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
[open(f'/requirements-{e}.txt', 'w').write('\n'.join(p['dependencies'] + p['optional-dependencies'][e]) + '\n') \
 for e in ('operator', 'trainer')]"

# ---------------------------------------------------------------- the package, as a wheel
# Only what `pip install .` needs (README.md: the package's readme); .dockerignore keeps the
# rest of the context (venv, caches, cluster state, Go binaries) out.
FROM ${PYTHON_IMAGE} AS wheel
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY trainer_image/ trainer_image/
RUN python -m venv /tmp/build && /tmp/build/bin/pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- operator
FROM ${PYTHON_IMAGE} AS operator-deps
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /requirements-operator.txt /tmp/requirements.txt
RUN python -m venv /opt/tftj \
 && /opt/tftj/bin/pip install --upgrade pip \
 && /opt/tftj/bin/pip install -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE} AS operator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/tftj/bin:$PATH
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin tftj
# The dependencies and the package are separate layers: a code change ships a small layer.
COPY --from=operator-deps /opt/tftj /opt/tftj
COPY --from=wheel /wheels /tmp/wheels
RUN PIP_NO_CACHE_DIR=1 /opt/tftj/bin/pip install --no-deps --no-compile /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/tftj/bin/tftj operator --help >/dev/null
USER 1000:1000
# webhook, metrics, liveness (see charts/tftj/values.yaml)
EXPOSE 9443 8080 8081
ENTRYPOINT ["tftj", "operator"]
CMD ["--all-namespaces"]

# ---------------------------------------------------------------- trainer
FROM ${PYTHON_IMAGE} AS trainer-deps
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /requirements-trainer.txt /tmp/requirements.txt
RUN python -m venv /opt/tftj \
 && /opt/tftj/bin/pip install --upgrade pip \
 && /opt/tftj/bin/pip install -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE} AS trainer
# TF_USE_LEGACY_KERAS: the trainer uses tf_keras (Keras 3 breaks MultiWorkerMirroredStrategy).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/tftj/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 HOME=/home/tftj
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/tftj --shell /usr/sbin/nologin tftj
# TensorFlow and the other dependencies (~2.4 GB) are one layer, the package another: a code
# change rebuilds and ships only the small one.
COPY --from=trainer-deps /opt/tftj /opt/tftj
COPY --from=wheel /wheels /tmp/wheels
RUN PIP_NO_CACHE_DIR=1 /opt/tftj/bin/pip install --no-deps --no-compile /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/tftj/bin/python -c "import tftj_trainer, tftj.api, tensorflow, tf_keras" \
 && /opt/tftj/bin/python -m tftj_trainer --help >/dev/null
# The working directory is what relative data.path values resolve against in a cluster:
# examples/digits-mlp.yaml reads data/digits.csv from here. Root-owned, read-only to the trainer.
WORKDIR /home/tftj
COPY examples/data/ /home/tftj/data/
USER 1000:1000
# TF collective port, Prometheus metrics, TensorBoard (when this image serves it)
EXPOSE 2222 9400 6006
# The operator's worker pods set the same command explicitly
# (tftj.operator.children.TRAINER_COMMAND); the TensorBoard pod overrides it with `tensorboard`.
ENTRYPOINT ["python", "-m", "tftj_trainer"]
CMD ["--params", "/etc/tftj/params.yaml"]
