# Demo only: an offline git remote for the web pod, seeded from demo/site.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --home-dir /srv/git --create-home git
COPY demo/site /seed
COPY demo/git-server/entrypoint.sh /usr/local/bin/git-server
USER 10001:10001
EXPOSE 9418
HEALTHCHECK --interval=2s --timeout=3s --retries=15 CMD git ls-remote git://127.0.0.1/site.git >/dev/null
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/git-server"]
