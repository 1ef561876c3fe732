# metrics-adapter image. Build from the repository root: docker build -f images/metrics-adapter.Dockerfile .
# Stage 1 builds the project as a wheel into a venv; the final stage has no build tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecars ./sidecars
COPY ambassadors ./ambassadors
COPY adapters ./adapters
RUN python3 -m venv /opt/podpatterns \
 && /opt/podpatterns/bin/pip install --no-cache-dir --disable-pip-version-check -q wheel \
 && /opt/podpatterns/bin/pip wheel --no-cache-dir --no-deps -q -w /wheels . \
 && /opt/podpatterns/bin/pip install --no-cache-dir -q /wheels/*.whl \
 && /opt/podpatterns/bin/pip uninstall -y -q pip wheel

FROM python:3.11-slim
# The adapter needs nothing beyond Python.
# tini is PID 1: it forwards SIGTERM to the service and reaps zombie children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini  \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/podpatterns /opt/podpatterns
ENV PATH=/opt/podpatterns/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="podpatterns metrics-adapter" \
      org.opencontainers.image.source="https://github.com/podpatterns/podpatterns" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# StatsD (UDP and TCP) in, /metrics out: statsd_exporter's default ports.
EXPOSE 9125/udp 9125/tcp 9102/tcp
# Healthy when /-/healthy answers on the default --web.listen-address (:9102); a deployment that
# moves the port sets its own probe (compose healthcheck, Kubernetes livenessProbe).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/opt/podpatterns/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9102/-/healthy', timeout=2)"]
USER 65532:65532
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/podpatterns/bin/metrics-adapter"]
