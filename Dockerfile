# syntax=docker/dockerfile:1
# One image for every Heimdall process: the five services, the Celery worker, the
# receiver simulator and the one-shot migration (docker-compose.yml picks the command).
#   docker build -t heimdall:local .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: the package and its dependencies in a virtual environment -----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/heimdall
WORKDIR /src
# Dependencies first, from pyproject alone, so a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p src/heimdall && touch src/heimdall/__init__.py \
    && /opt/heimdall/bin/pip install . \
    && /opt/heimdall/bin/pip uninstall --yes heimdall
COPY src ./src
RUN /opt/heimdall/bin/pip install --no-deps . \
    && /opt/heimdall/bin/python -m compileall -q /opt/heimdall/lib

# --- runtime: the environment alone, run by an unprivileged user ----------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 heimdall \
    && useradd --system --uid 10001 --gid heimdall --home-dir /var/lib/heimdall \
       --create-home --shell /usr/sbin/nologin heimdall
COPY --from=build /opt/heimdall /opt/heimdall
ENV PATH=/opt/heimdall/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEIMDALL_BIND_HOST=0.0.0.0 \
    HEIMDALL_STATE_DIR=/var/lib/heimdall \
    HEIMDALL_S3_AUTOSTART=false
# The simulated network's registry as the containers reach it: the simulator's
# receivers at the compose host name `simulator` instead of loopback.
RUN mkdir -p /etc/heimdall \
    && sed 's#ws://127\.0\.0\.1:#ws://simulator:#' \
       "$(python -c 'from heimdall.core.settings import PACKAGE_DATA; print(PACKAGE_DATA)')/stations-simulated.yaml" \
       > /etc/heimdall/stations-compose.yaml \
    && grep -q 'ws://simulator:8073' /etc/heimdall/stations-compose.yaml
USER heimdall:heimdall
WORKDIR /var/lib/heimdall
# services 8000-8004, worker metrics 9808, simulator control 8070 and receivers 8073-8079
EXPOSE 8000-8004 8070 8073-8079 9808
# Each container's healthcheck is in docker-compose.yml: what is healthy depends on the process.
CMD ["heimdall", "--help"]
