# git-sync image. Build from the repository root: docker build -f images/git-sync.Dockerfile .
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
# git-sync drives the git executable (and ssh for ssh:// remotes), like upstream; uid 65533 as upstream.
# tini is PID 1: it forwards SIGTERM to the service and reaps zombie children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/podpatterns /opt/podpatterns
# /git owned by the service user: a fresh named volume mounted here inherits this ownership, so
# `--root=/git` works without an init container (in Kubernetes, fsGroup does the same).
# A passwd entry for uid 65533 (ssh refuses to run for a uid it cannot look up), as upstream.
RUN groupadd -g 65533 git-sync \
 && useradd -u 65533 -g 65533 -d /tmp -s /usr/sbin/nologin -M git-sync \
 && mkdir -p /git && chown 65533:65533 /git
ENV PATH=/opt/podpatterns/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="podpatterns git-sync" \
      org.opencontainers.image.source="https://github.com/podpatterns/podpatterns" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65533:65533
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/podpatterns/bin/git-sync"]
