# Demo only: the application container of the cache pod.
FROM python:3.11-slim
RUN python3 -m pip install --no-cache-dir -q redis \
 && useradd --uid 10001 --no-create-home app
COPY demo/cache-app/app.py /app/app.py
USER 10001:10001
EXPOSE 8090
HEALTHCHECK --interval=5s --timeout=3s --retries=5 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8090/status', timeout=2)"]
CMD ["python3", "/app/app.py"]
