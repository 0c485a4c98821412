# syntax=docker/dockerfile:1.7
# Two images from one source tree:
#   docker build --target operator -t tftj/operator:0.1.0 .
#   docker build --target trainer  -t tftj/trainer:0.1.0 .
# Both run as the unprivileged uid 1000 the operator's worker pods ask for (runAsNonRoot),
# so they pass Pod Security "restricted".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- source + build tools
FROM ${PYTHON_IMAGE} AS source
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Metadata first: the dependency layers below are cached until pyproject.toml changes.
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY trainer_image/ trainer_image/

# ---------------------------------------------------------------- operator
FROM source AS operator-build
RUN python -m venv /opt/tftj \
 && /opt/tftj/bin/pip install --upgrade pip \
 && /opt/tftj/bin/pip install '.[operator]'

FROM ${PYTHON_IMAGE} AS operator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/tftj/bin:$PATH
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin tftj
COPY --from=operator-build /opt/tftj /opt/tftj
USER 1000:1000
# webhook, metrics, liveness (see charts/tftj/values.yaml)
EXPOSE 9443 8080 8081
ENTRYPOINT ["tftj", "operator"]
CMD ["--all-namespaces"]

# ---------------------------------------------------------------- trainer
FROM source AS trainer-build
RUN python -m venv /opt/tftj \
 && /opt/tftj/bin/pip install --upgrade pip \
 && /opt/tftj/bin/pip install '.[trainer]'

FROM ${PYTHON_IMAGE} AS trainer
# TF_USE_LEGACY_KERAS: the trainer uses tf_keras (Keras 3 breaks MultiWorkerMirroredStrategy).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/tftj/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 HOME=/home/tftj
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/tftj --shell /usr/sbin/nologin tftj
COPY --from=trainer-build /opt/tftj /opt/tftj
WORKDIR /home/tftj
USER 1000:1000
# TF collective port, Prometheus metrics, TensorBoard (when this image serves it)
EXPOSE 2222 9400 6006
# The operator sets the command: python -m tftj_trainer --params /etc/tftj/params.yaml
CMD ["python", "-m", "tftj_trainer", "--help"]
