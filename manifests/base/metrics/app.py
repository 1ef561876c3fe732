"""Demo app for the adapter pattern: a tiny HTTP service that reports StatsD to localhost:9125.

Every request counts demo.http.requests.<method> and times itself (demo.http.latency); a
background thread reports a gauge every 5 s. It knows nothing about Prometheus.
"""

import contextlib
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATSD = ("127.0.0.1", 9125)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def emit(line: str) -> None:
    with contextlib.suppress(OSError):  # StatsD is fire-and-forget: a missing adapter is no error
        sock.sendto(line.encode(), STATSD)


def gauges() -> None:
    while True:
        emit(f"demo.queue.depth:{random.randint(0, 50)}|g")
        time.sleep(5)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        started = time.monotonic()
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path != "/healthz":
            emit("demo.http.requests.get:1|c")
            emit(f"demo.http.latency:{(time.monotonic() - started) * 1000:.3f}|ms")

    def log_message(self, format: str, *args: object) -> None:
        pass


threading.Thread(target=gauges, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
