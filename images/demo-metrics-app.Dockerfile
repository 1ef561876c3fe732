# Demo only: the application container of the metrics pod.
FROM python:3.11-slim
RUN python3 -m pip install --no-cache-dir -q statsd \
 && useradd --uid 10001 --no-create-home app
COPY demo/metrics-app/app.py /app/app.py
USER 10001:10001

CMD ["python3", "/app/app.py"]
