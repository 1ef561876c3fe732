# redis-ambassador image. Build from the repository root: docker build -f images/redis-ambassador.Dockerfile .
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
# The ambassador needs nothing beyond Python.
# tini is PID 1: it forwards SIGTERM to the service and reaps zombie children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini  \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/podpatterns /opt/podpatterns
ENV PATH=/opt/podpatterns/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="podpatterns redis-ambassador" \
      org.opencontainers.image.source="https://github.com/podpatterns/podpatterns" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
# 6379: the app's Redis (bind it to 127.0.0.1 in a pod: --listen 127.0.0.1:6379);
# 9121: /metrics and /ready (--http-bind 0.0.0.0:9121).
EXPOSE 6379 9121
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/podpatterns/bin/redis-ambassador"]
