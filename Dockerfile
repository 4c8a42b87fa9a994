# TradeWise AI: the API image (gunicorn serving the Flask app: `tradewise-api`).
#
#   tradewise build                       # through the Docker SDK, with OCI labels and tags
#   docker build --network host -t tradewise-ai .
#
# BASE_IMAGE needs python3 (3.11+) with its venv module at /usr/bin or /usr/local/bin:
# python:3.11-slim (the default) or e.g. a debootstrap'ed Debian bookworm with python3-venv.
# Offline, reproducible builds: put wheels in wheelhouse/ (`tradewise build --wheelhouse DIR`
# fills it); then nothing is fetched from an index. The runtime stage holds only the virtual
# environment (which holds the code) and runs as tradewise (uid 1000) on a read-only root with a
# writable /tmp.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python3 -m venv /opt/venv
# the dependencies first (cached until pyproject.toml or the wheels change); `wheelhous[e]`
# matches the optional wheelhouse/ dir, pyproject.toml makes sure the COPY always has a source.
# /opt/deps is that venv trimmed for the runtime stage: without pip. (The scaling CronJobs'
# `tradewise scale traffic` runs here without the `kubernetes` client: tradewise's own reaches the
# API server with the pod's service account.)
COPY pyproject.toml wheelhous[e] /src/wheelhouse/
COPY pyproject.toml /src/
# hadolint ignore=SC2086
RUN set -eu; \
    offline=""; \
    if ls /src/wheelhouse/*.whl >/dev/null 2>&1; then offline="--no-index --find-links /src/wheelhouse"; fi; \
    /opt/venv/bin/python -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(d["project"]["optional-dependencies"]["service"]))' > /src/requirements.txt; \
    /opt/venv/bin/pip install $offline --requirement /src/requirements.txt; \
    echo "$offline" > /src/pip-options; \
    cp -a /opt/venv /opt/deps; \
    rm -rf /opt/deps/bin/pip* /opt/deps/lib/python3*/site-packages/pip /opt/deps/lib/python3*/site-packages/pip-*
# then the project itself, into its own prefix: a code change rebuilds only this small layer
COPY README.md tradewise.yaml /src/
COPY templates /src/templates
COPY tradewise_ops /src/tradewise_ops
COPY app /src/app
# hadolint ignore=SC2046
RUN /opt/venv/bin/pip install $(cat /src/pip-options) --no-deps --prefix /opt/project /src

FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 1000 tradewise \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tradewise
COPY --from=builder /opt/deps /opt/venv
COPY --from=builder /opt/project/ /opt/venv/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    BIND=0.0.0.0:8000 \
    DATABASE_URL=sqlite:////tmp/tradewise.db
WORKDIR /tmp
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
    CMD ["tradewise-healthcheck", "api"]
CMD ["tradewise-api"]
