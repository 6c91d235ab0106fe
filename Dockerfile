# syntax=docker/dockerfile:1
# Urgent Alerts: one image for `alerts serve`, `alerts worker` and `alerts init`.
# The install steps live in deploy/install.sh, which tests/test_install_path.py runs too.
#
#   docker build -t urgent-alerts .
#   docker run --rm -v "$PWD/alerts.toml:/etc/alerts/alerts.toml:ro" \
#       -e ALERTS_SERVER_SECRET_KEY=... urgent-alerts serve
#
# deploy/compose.yaml runs PostgreSQL, one `serve`, two `worker`s and a mail catcher.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the project's wheel
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /repo
COPY . .
RUN sh deploy/install.sh wheel /repo /wheels

# ---- runtime: the wheel in a venv, run as an unprivileged user
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/alerts --create-home \
        --shell /usr/sbin/nologin alerts
COPY --from=build /wheels /tmp/wheels
COPY deploy/install.sh /usr/local/lib/alerts/install.sh
RUN sh /usr/local/lib/alerts/install.sh venv /tmp/wheels /opt/alerts && rm -rf /tmp/wheels

# The config file is mounted here; secrets come as ALERTS_<SECTION>_<KEY> variables.
ENV PATH=/opt/alerts/bin:$PATH \
    ALERTS_CONFIG=/etc/alerts/alerts.toml \
    PYTHONUNBUFFERED=1 \
    ALERTS_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
USER 10001:10001
WORKDIR /var/lib/alerts
EXPOSE 8080
# /healthz answers 503 when the database, the dispatcher or the scheduler is degraded.
# A worker serves no HTTP: compose disables this check for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['ALERTS_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["alerts"]
CMD ["serve"]
