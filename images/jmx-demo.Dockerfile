# Demo JVM app with Jolokia (the JMX source of the metrics-adapter demo pod).
# Build from the repository root: docker build -f images/jmx-demo.Dockerfile -t podpatterns/jmx-demo:dev .
# Run: docker run --rm -p 8778:8778 podpatterns/jmx-demo:dev   (Jolokia at http://HOST:8778/jolokia)
# Settings: JOLOKIA_PORT (8778), JOLOKIA_HOST (0.0.0.0), SYNTHETIC_BEANS / SYNTHETIC_ATTRIBUTES
# (extra MBeans for load tests), JAVA_OPTS.
# Everything comes from Debian packages: Jolokia's AgentServlet (libjolokia-core-java) in
# Jetty 9 (libjetty9-java), compiled with plain javac; no Maven, no downloads.
FROM debian:bookworm-slim AS build
# The JDK's postinst needs man1 to exist (slim images drop /usr/share/man).
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless \
      libjolokia-core-java libjetty9-java libservlet-api-java \
 && rm -rf /var/lib/apt/lists/*
COPY demo/jmx-app /src
RUN sh /src/build.sh /opt/jmx-app

FROM debian:bookworm-slim
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
      libjolokia-core-java libjetty9-java libservlet-api-java \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/jmx-app /opt/jmx-app
ENV JOLOKIA_PORT=8778 \
    JOLOKIA_HOST=0.0.0.0 \
    JAVA_OPTS="-XX:+UseSerialGC -Xmx128m"
EXPOSE 8778
LABEL org.opencontainers.image.title="podpatterns jmx-demo" \
      org.opencontainers.image.source="https://github.com/podpatterns/podpatterns" \
      org.opencontainers.image.licenses="Apache-2.0"
# Ready when Jolokia's port accepts connections.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s \
  CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/${JOLOKIA_PORT}' || exit 1
USER 65532:65532
# The JVM handles SIGTERM itself (Jetty's stop-at-shutdown), so it can be PID 1.
ENTRYPOINT ["sh", "-c", "exec java $JAVA_OPTS -cp /opt/jmx-app/classes:$(cat /opt/jmx-app/classpath) demo.DemoApp \"$@\"", "jmx-demo"]
